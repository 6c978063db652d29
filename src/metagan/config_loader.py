"""Configs as nested frozen dataclasses, the part every domain shares: build one from a dict (a preset, a stored
JSON config, `--set` overrides) with a clear ConfigError for an unknown section or key or a value of the wrong
type; apply `section.key=value` overrides; look up named presets.

    >>> loader = ConfigLoader(Config, PRESETS, validate)      # one per domain, over its own dataclass and presets
    >>> cfg = loader.apply_overrides(loader.get_preset("tiny"), ["meta.inner_steps=3"])
    >>> loader.from_json(cfg.to_json()) == cfg
    True

A domain's top-level dataclass derives from `Sections`; each of its fields is a section, itself a frozen dataclass
of typed keys. metagan.config (images), metagan.ratings.config and metagan.dialogue.config each expose their
loader's methods as the module's from_dict, apply_overrides, get_preset and config_from_json.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Generic, TypeVar

from .errors import ConfigError

class Sections:
    """Base of a top-level config dataclass: its sections as a dict and as JSON. A domain beside images names
    itself in `domain`, which its dict then holds first, so a stored config says which domain reads it."""

    domain: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        return {"domain": self.domain, **d} if self.domain else d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


C = TypeVar("C", bound=Sections)


def _unchanged(d: dict[str, Any]) -> dict[str, Any]:
    return d


@dataclass(frozen=True)
class ConfigLoader(Generic[C]):
    """Builds configs of one dataclass `cls` (a `Sections` subclass)."""

    cls: type[C]                                   # the top-level dataclass: one field per section
    presets: Mapping[str, dict[str, Any]]          # name -> the sections' keys that differ from the defaults
    validate: Callable[[C], None]                  # checks across keys, run on every config built
    preset_noun: str = "preset"                    # names the presets in errors ("unknown <noun> 'x'")
    removed: Mapping[str, str] = field(default_factory=dict)  # "section.key" -> the last release that had it
    migrate: Callable[[dict[str, Any]], dict[str, Any]] = _unchanged  # a stored config's dict -> this release's

    def from_dict(self, d: dict[str, Any], base: C | None = None) -> C:
        """A config from a nested dict {section: {key: value}} over `base` (the defaults if None); values are
        converted to the annotated types (command-line strings too). Raises ConfigError for an unknown section
        or key, a value of the wrong type, or a config `validate` refuses."""
        base = base if base is not None else self.cls()
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a mapping of sections, got {type(d).__name__}")
        names = [f.name for f in fields(self.cls)]  # type: ignore[arg-type]
        parts = {}
        for section, values in d.items():
            if section == "domain" and self.cls.domain:  # a stored config's label of its domain
                continue
            if section not in names:
                raise ConfigError(f"unknown config section {section!r}; sections are: {', '.join(names)}")
            parts[section] = self._section(getattr(base, section), section, values)
        cfg = replace(base, **parts)  # type: ignore[type-var]
        self.validate(cfg)
        return cfg

    def _section(self, sub: Any, section: str, values: Any) -> Any:
        """Section `sub` with the keys of `values` replaced, converted to their types."""
        if not isinstance(values or {}, dict):
            raise ConfigError(f"config section {section!r} must be a mapping of keys to values, got {values!r:.80}")
        hints = typing.get_type_hints(type(sub))
        changes = {}
        for key, value in (values or {}).items():
            name = f"{section}.{key}"
            if name in self.removed:
                raise ConfigError(f"{name}: this option was removed after metagan {self.removed[name]} "
                                  "(that release still has it)")
            if key not in hints:
                raise ConfigError(f"unknown config key {name}; keys of {section} are: {', '.join(hints)}")
            changes[key] = coerce(value, hints[key], name)
        return replace(sub, **changes)

    def apply_overrides(self, cfg: C, overrides: list[str] | tuple[str, ...]) -> C:
        """Apply `section.key=value` strings (as given to `--set`)."""
        nested: dict[str, dict[str, Any]] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or "." not in key:
                raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. meta.inner_steps=5)")
            section, sub = key.strip().split(".", 1)
            nested.setdefault(section, {})[sub] = value
        return self.from_dict(nested, cfg)

    def get_preset(self, name: str) -> C:
        """The named preset (`presets`) over the defaults."""
        if name not in self.presets:
            raise ConfigError(f"unknown {self.preset_noun} {name!r}; presets are: {', '.join(sorted(self.presets))}")
        return self.from_dict(self.presets[name])

    def from_json(self, text: str) -> C:
        """The config of a stored JSON config (a checkpoint's, a run folder's config.json); a domain's config names
        its domain, an image config none. Raises ValueError on text that is not JSON."""
        d = json.loads(text)
        domain, stored = self.cls.domain, d.get("domain", "") if isinstance(d, dict) else None
        if domain and stored != domain:
            raise ConfigError(f"not a {domain} config (no \"domain\": \"{domain}\")")
        if not domain and stored:
            raise ConfigError(f"not an image config: it is a {stored!r:.40} config (\"domain\")")
        return self.from_dict(self.migrate(d))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from JSON or a command-line string) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a comma-separated list, got {value!r}")
        return tuple(coerce(v, args[0], key) for v in value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value, 10)
        if tp is float:
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value.strip()
    except (ValueError, TypeError):  # TypeError: a stored null, list or mapping where a number belongs
        raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r:.80}") from None
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - a bug in this module


def check_choices(d: dict[str, dict[str, Any]], choices: Mapping[str, tuple]) -> None:
    """Every "section.key" of `choices` holds one of its allowed values in the config dict `d`."""
    for key, allowed in choices.items():
        section, sub = key.split(".")
        if d[section][sub] not in allowed:
            raise ConfigError(f"{key}={d[section][sub]!r} is not one of: {', '.join(map(str, allowed))}")


def check_ranges(d: dict[str, dict[str, Any]], ranges: Mapping[str, tuple[int, int]]) -> None:
    """Every "section.key" of `ranges` holds a value between its (lo, hi), both included, in the config dict `d`."""
    for key, (lo, hi) in ranges.items():
        section, sub = key.split(".")
        if not lo <= d[section][sub] <= hi:
            raise ConfigError(f"{key} must be between {lo} and {hi}, got {d[section][sub]}")
