"""The shipped dialogue model (pretrained:dialogue-gan-fomaml, docs/dialogue.md "Shipped model"): it is its preset,
loads by name, adapts to a few exchanges and replies; the commands for image models refuse it with a pointer to
`metagan reply`, and the serve page still lists image models only."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors import safe_open

if importlib.util.find_spec("yaml") is None:
    pytest.skip("the dialogue domain reads YAML conversations: pip install -e \".[dialogue]\" (CI installs it through "
                "the test extra)", allow_module_level=True)

from metagan import checkpoint as ckpt
from metagan.cli import main
from metagan.dialogue.config import get_preset
from metagan.dialogue.reply import Replier
from metagan.dialogue.train import FORMAT, read

NAME = "dialogue-gan-fomaml"
SHIPPED = ckpt.PRETRAINED_PREFIX + NAME
TOPIC = """categories:
- tea
conversations:
- - Do you like tea?
  - I drink green tea every morning.
- - What is your favourite drink?
  - Tea, always tea.
- - Hi
  - Hello! Shall we have some tea?
- - What do you do in the evening?
  - I read a book with a cup of tea.
- - Coffee or tea?
  - Tea, of course.
"""


@pytest.fixture(scope="module")
def topic(tmp_path_factory):
    path = tmp_path_factory.mktemp("topic") / "tea.yml"
    path.write_text(TOPIC, encoding="utf-8")
    return path


def test_shipped_dialogue_model_is_its_preset_adapts_and_replies(topic, capsys):
    assert NAME in ckpt.pretrained_names(FORMAT.name) and ckpt.format_of(SHIPPED) == FORMAT.name
    assert ckpt.resolve(SHIPPED).stat().st_size < 3e6
    cfg, step, meta, _ = read(SHIPPED)
    preset = get_preset(NAME)
    for section in ("data", "task", "model", "loss", "meta"):
        assert getattr(cfg, section) == getattr(preset, section), section
    assert cfg.train.init_from is None and 0 < step <= preset.train.steps and set(meta) == {"g", "d"}
    with safe_open(str(ckpt.resolve(SHIPPED)), framework="pt") as f:  # no optimizer or RNG state
        assert all(k.startswith("meta.") for k in f.keys())

    bot = Replier.load(SHIPPED)
    support = bot.read_support(topic)
    assert support.shape[0] == 5
    adapted = bot.adapt(support, seed=0)
    moved = [not torch.equal(adapted.pg[k], meta["g"][k]) for k in meta["g"]]
    assert all(moved)  # every generator tensor took the inner steps
    replies = adapted.reply(["Hi", "Do you like coffee?", "What do you read?"], seed=1)
    assert len(replies) == 3 and all(isinstance(r, str) and r.strip() for r in replies)
    assert replies == bot.adapt(support, seed=0).reply(["Hi", "Do you like coffee?", "What do you read?"], seed=1)

    capsys.readouterr()
    assert main(["reply", "--checkpoint", SHIPPED, "--conversations", str(topic), "--prompt", "Hi"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("Hi\t") and out[0].split("\t", 1)[1].strip()


def test_image_commands_refuse_the_dialogue_model_and_serve_lists_image_models_only(topic, tmp_path, capsys):
    assert main(["adapt", "--checkpoint", SHIPPED, "--support", str(topic), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is a dialogue model" in err and "metagan reply" in err and "Traceback" not in err
    with pytest.raises(ckpt.CheckpointError, match="metagan reply"):
        ckpt.config_of(SHIPPED)

    from metagan.serve import ModelCache
    names = ModelCache().names
    assert SHIPPED not in names and ckpt.PRETRAINED_PREFIX + "omniglot-metasgd" in names
    assert all(ckpt.format_of(n) == ckpt.FORMAT for n in names)


def test_export_of_a_dialogue_file_keeps_its_meta_parameters_and_refuses_its_own_file(tmp_path, capsys):
    out = tmp_path / "copy.safetensors"
    src = str(ckpt.resolve(SHIPPED))
    assert main(["export", "--checkpoint", src, "--out", str(out)]) == 0
    cfg, step, meta, _ = read(out)
    cfg0, step0, meta0, _ = read(SHIPPED)
    assert (cfg, step) == (cfg0, step0)
    assert all(torch.equal(meta[g][k], meta0[g][k]) for g in meta0 for k in meta0[g])
    assert main(["export", "--checkpoint", src, "--out", src, "--overwrite"]) == 2
    assert "is the checkpoint being exported" in capsys.readouterr().err
