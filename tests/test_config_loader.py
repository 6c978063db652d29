"""The config loader every domain shares (images, ratings, dialogue): presets round-trip through JSON, a stored
config is read only by its own domain, and unknown sections, keys and bad values are refused with the same words."""
from __future__ import annotations

import pytest

from metagan import config as images
from metagan.dialogue import config as dialogue
from metagan.errors import ConfigError
from metagan.ratings import config as ratings

DOMAINS = {"images": images, "ratings": ratings, "dialogue": dialogue}


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_preset_round_trips_through_json_and_only_its_domain_reads_it(name):
    mod = DOMAINS[name]
    for preset in mod.PRESETS:
        cfg = mod.get_preset(preset)
        assert mod.config_from_json(cfg.to_json()) == cfg
        assert ("domain" in cfg.to_dict()) == (name != "images")
        for other_name, other in DOMAINS.items():
            if other_name != name:
                words = f"not an image config: it is a '{name}'" if other_name == "images" else f"not a {other_name}"
                with pytest.raises(ConfigError, match=words):
                    other.config_from_json(cfg.to_json())


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_unknown_sections_keys_and_bad_values_are_refused_alike(name):
    mod = DOMAINS[name]
    cfg = mod.get_preset(sorted(mod.PRESETS)[0])
    cases = [
        ({"nope": {}}, "unknown config section 'nope'; sections are: data, task, model, loss, meta, train"),
        ({"meta": 3}, "config section 'meta' must be a mapping of keys to values, got 3"),
        ({"meta": {"bogus": 1}}, "unknown config key meta.bogus; keys of meta are: learner, inner_steps"),
        ({"meta": {"inner_steps": 1.5}}, "meta.inner_steps: expected int, got 1.5"),
        ({"meta": {"first_order": "maybe"}}, "meta.first_order: expected bool, got 'maybe'"),
        ({"meta": {"learner": "nope"}}, "meta.learner='nope' is not one of: maml, fomaml"),
        ("text", "config must be a mapping of sections, got str"),
    ]
    for d, message in cases:
        with pytest.raises(ConfigError) as err:
            mod.from_dict(d, cfg)
        assert str(err.value).startswith(message)
    with pytest.raises(ConfigError, match=r"override 'meta\.inner_steps' is not of the form section\.key=value"):
        mod.apply_overrides(cfg, ["meta.inner_steps"])
    assert mod.apply_overrides(cfg, ["meta.inner_steps=3", "train.steps=7"]).meta.inner_steps == 3
    assert mod.apply_overrides(cfg, ["train.steps=7"]).train.steps == 7
    with pytest.raises(ConfigError, match="unknown .*preset 'nope'; presets are: "):
        mod.get_preset("nope")
