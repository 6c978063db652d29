"""Conversations from files: the chatterbot corpus (read from the installed package) and a user's own folder.

    >>> topics = load_corpus()                         # every topic file of chatterbot-corpus (extra `dialogue`)
    >>> topics[0].name, topics[0].language, topics[0].exchanges[0]
    ('bengali/botprofile', 'bengali', ('...', '...'))
    >>> mine = read_conversations("my_chats/")         # *.yml / *.yaml / *.jsonl files: one topic

A topic is one file (a topic in one language: `english/ai.yml`); its conversations are lists of turns, and each
pair of consecutive turns is one exchange (prompt, reply). Files read:
    YAML in chatterbot's format: {"categories": [...], "conversations": [[turn, turn, ...], ...]}
    JSON lines: one {"prompt": "...", "reply": "..."} object per line
The corpus (BSD-3 licence) is read where pip installed it and never copied; its few malformed entries (a
conversation written as one string) are skipped and counted. In a user's files any malformed entry is an error.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError

Exchange = tuple[str, str]
SUFFIXES = (".yml", ".yaml", ".jsonl")


@dataclass
class Topic:
    """One task: name ("language/file"), language (the corpus folder, or "" for a user's files), exchanges."""

    name: str
    language: str
    exchanges: list[Exchange]
    skipped: int = 0  # malformed conversations left out (corpus files only)
    source: str = field(default="", repr=False)


def corpus_dir() -> Path:
    """The data folder of the installed chatterbot-corpus package, or a DataError that says how to install it."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the dialogue domain reads the chatterbot corpus from its package: "
                        "pip install -e \".[dialogue]\" (or pip install chatterbot-corpus), or pass a folder of "
                        "your own conversations")
    root = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not root.is_dir():
        raise DataError(f"chatterbot-corpus is installed but has no data folder at {root}: reinstall it")
    return root


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ConfigError("reading YAML conversations needs PyYAML: pip install -e \".[dialogue]\"") from None
    return yaml


def read_yaml(path: Path, strict: bool = True) -> tuple[list[Exchange], int]:
    """Exchanges of one chatterbot YAML file and the number of malformed conversations skipped (strict: none,
    a malformed one raises DataError)."""
    yaml = _yaml()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path} is not readable YAML ({str(e).splitlines()[0][:120]}); write it in chatterbot's "
                        "format: conversations: [[prompt, reply, ...], ...]") from None
    convs = doc.get("conversations") if isinstance(doc, dict) else None
    if not isinstance(convs, list):
        raise DataError(f"{path} has no list under 'conversations'; write it in chatterbot's format: "
                        "conversations: [[prompt, reply, ...], ...]")
    out, skipped = [], 0
    for i, conv in enumerate(convs):
        turns = [str(t).strip() for t in conv if t is not None] if isinstance(conv, list) else []
        if len(turns) < 2 or not all(turns):
            if strict:
                raise DataError(f"{path}: conversation {i + 1} is not a list of at least two non-empty turns "
                                f"({conv!r:.60}); write each as [prompt, reply, ...]")
            skipped += 1
            continue
        out += list(zip(turns, turns[1:]))
    return out, skipped


def read_jsonl(path: Path) -> list[Exchange]:
    """Exchanges of a JSON lines file of {"prompt": ..., "reply": ...} objects (blank lines allowed)."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not readable UTF-8 text ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path} line {n} is not JSON: write one {{\"prompt\": ..., \"reply\": ...}} object "
                            "per line") from None
        if not (isinstance(obj, dict) and isinstance(obj.get("prompt"), str) and isinstance(obj.get("reply"), str)
                and obj["prompt"].strip() and obj["reply"].strip()):
            raise DataError(f"{path} line {n} needs non-empty string fields \"prompt\" and \"reply\", got "
                            f"{line.strip()!r:.60}")
        out.append((obj["prompt"].strip(), obj["reply"].strip()))
    return out


def read_file(path: Path, strict: bool = True) -> tuple[list[Exchange], int]:
    if path.suffix == ".jsonl":
        return read_jsonl(path), 0
    return read_yaml(path, strict)


def read_conversations(path: str | Path) -> Topic:
    """A user's conversations: one file, or every *.yml / *.yaml / *.jsonl file of a folder, as one topic."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
        if not files:
            raise DataError(f"{p} holds no conversation files (*.yml, *.yaml or *.jsonl)")
    elif p.is_file():
        if p.suffix not in SUFFIXES:
            raise DataError(f"{p}: conversation files are .yml / .yaml (chatterbot's format) or .jsonl "
                            "({\"prompt\", \"reply\"} per line)")
        files = [p]
    else:
        raise DataError(f"no conversations at {p}: give a .yml/.jsonl file or a folder of them")
    exchanges = [e for f in files for e in read_file(f)[0]]
    if not exchanges:
        raise DataError(f"{p} holds no exchanges: a conversation needs at least a prompt and a reply")
    return Topic(p.stem, "", exchanges, source=str(p))


def load_corpus(root: str | Path | None = None) -> list[Topic]:
    """Every topic file under root (default: the installed chatterbot corpus), one folder per language, sorted by
    name. Empty files give topics with no exchanges (the split's minimum leaves them out)."""
    base = Path(root).expanduser() if root else corpus_dir()
    if not base.is_dir():
        raise DataError(f"no corpus folder at {base}: give a folder of language folders of YAML topic files")
    topics = []
    for lang in sorted(d for d in base.iterdir() if d.is_dir()):
        for f in sorted(x for x in lang.iterdir() if x.suffix in SUFFIXES and x.is_file()):
            exchanges, skipped = read_file(f, strict=False)
            topics.append(Topic(f"{lang.name}/{f.stem}", lang.name, exchanges, skipped, str(f)))
    if not topics:
        raise DataError(f"{base} holds no topic files (language folders of *.yml files)")
    return topics
