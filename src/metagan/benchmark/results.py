"""A benchmark folder's results.json: the protocol header two runs must share to be resumed or merged, earlier
protocol versions upgraded where their numbers still hold, atomic writes and the report order of methods."""
from __future__ import annotations

import json
from pathlib import Path

from .. import checkpoint as ckpt
from ..errors import ConfigError
from ..evaluate import PROTOCOL_VERSION

_HEADER = ("suite", "budget", "adapt_steps", "select", "keep_generator", "protocol", "feature_net", "heldout", "split",
           "protocol_version")
# folders written before a field existed ran without selection and sampled from the adapted generator
# and on the evaluation split under protocol version 1 (no reference rows, no bootstrap)
_HEADER_DEFAULTS = {"select": 1.0, "keep_generator": False, "split": "evaluation", "protocol_version": 1}


def _header_differences(a: dict, b: dict) -> list[str]:
    """The protocol fields (_HEADER) on which two results dicts differ, compared as stored (tuples as lists)."""
    a, b = (json.loads(json.dumps({key: r.get(key, _HEADER_DEFAULTS.get(key)) for key in _HEADER}))
            for r in (a, b))
    return [key for key in _HEADER if a[key] != b[key]]


def _has_generated_arm(entry: dict) -> bool:
    return any("generated" in arm for k in entry["k"].values() for arm in ((k.get("lowdata") or {}).get("arms") or {}))


def _uses_affine(name: str, entry: dict) -> bool:
    return name == "affine" or any("affine" in arm for k in entry["k"].values()
                                   for arm in ((k.get("lowdata") or {}).get("arms") or {}))


def upgrade_results(results: dict) -> dict:
    """Earlier protocol versions' results as the current one's where the numbers are the same: version 3 changed
    only the low-data arm "affine + generated" (rows without a generated arm carry over from 2), version 4 only the
    affine transform (the `affine` row and every arm with affine change; reference and real-only rows carry over).
    The other rows are dropped, to be measured again. Version 1 is returned as it is."""
    version = results.get("protocol_version")
    if version not in (2, 3) or PROTOCOL_VERSION != 4:
        return results
    kept = {name: m for name, m in results.get("methods", {}).items()
            if not _uses_affine(name, m) and (version == 3 or not _has_generated_arm(m))}
    return {**results, "protocol_version": 4, "upgraded_from": version, "methods": kept}


def _previous_results(path: Path, header: dict) -> dict:
    """Methods of an earlier run in the same folder under the same protocol (upgrade_results applied); another
    protocol is an error."""
    if not path.exists():
        return {}
    prev = upgrade_results(json.loads(path.read_text()))
    differ = _header_differences(prev, header)
    if differ:
        raise ConfigError(f"{path} holds results of another benchmark ({', '.join(differ)} differ); "
                          "choose another --out folder or delete that one")
    return prev.get("methods", {})


def _write(path: Path, text: str) -> None:
    """Replace `path` atomically: a benchmark killed mid-write keeps the results of the methods it finished."""
    ckpt.write_atomic(path, lambda tmp: tmp.write_text(text))


def _in_report_order(methods: dict, known: dict) -> dict:
    order = [m for m in known if m in methods] + sorted(set(methods) - set(known))
    return {name: methods[name] for name in order}
