"""Property-based tests (Hypothesis): the readers of untrusted input either succeed or raise the project's own
error, never another exception, whatever they are given.

- the config parser: `--set` strings (`apply_overrides`), nested dicts (`from_dict`) and stored JSON
  (`config_from_json`) give a valid Config or a ConfigError; to_json -> config_from_json is the identity;
- the image reader (`read_image`): arbitrary or mutated bytes give a DataError or a (C, size, size) uint8 tensor;
- the checkpoint reader (`checkpoint.load`): arbitrary or mutated bytes of a tiny checkpoint give a
  CheckpointError or a checkpoint.
"""
import io
import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from metagan import checkpoint as ckpt
from metagan.config import (CHOICES, LIMITS, Config, apply_overrides, config_from_json, from_dict, get_preset,
                            validate)
from metagan.data import read_image
from metagan.errors import CheckpointError, ConfigError, DataError
from metagan.system import build_system
from metagan.train import init_state, to_checkpoint

# Bounded, so the file runs in well under a minute: deadline off (a loaded machine), nothing stored in .hypothesis/.
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = [f"{section}.{f}" for section, values in Config().to_dict().items() for f in values]
# Values that reach every branch of the parser: numbers of every kind, booleans, lists, None, the choices.
VALUE_WORDS = ["0", "1", "-1", "3", "8", "1e3", "1.5", "nan", "inf", "-inf", "1e400", "true", "no", "none", "null",
               "None ", " 7", "1_000", "0x10", "a,b", ",", "", "9" * 30, *sorted({c for cs in CHOICES.values()
                                                                                  for c in cs})]
values = st.one_of(st.sampled_from(VALUE_WORDS), st.text(max_size=12))
override = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), values),  # well-formed keys, any value
    st.text(max_size=20),                                                 # anything at all
)


@FAST
@given(st.lists(override, max_size=4))
def test_overrides_give_a_valid_config_or_a_config_error(items):
    try:
        cfg = apply_overrides(Config(), items)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    validate(cfg)  # what it returned passes its own checks
    assert config_from_json(cfg.to_json()) == cfg


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
sections = st.dictionaries(st.sampled_from(KEYS).map(lambda k: k.split(".")[1]) | st.text(max_size=6),
                           json_values | st.sampled_from(VALUE_WORDS), max_size=3)
config_dicts = st.dictionaries(st.sampled_from(list(Config().to_dict())) | st.text(max_size=6),
                               sections | json_values, max_size=3)


@FAST
@given(config_dicts)
def test_from_dict_gives_a_valid_config_or_a_config_error(d):
    try:
        cfg = from_dict(d)
    except ConfigError:
        return
    assert config_from_json(cfg.to_json()) == cfg


@FAST
@given(st.one_of(st.text(max_size=60), config_dicts.map(json.dumps)))
def test_stored_json_gives_a_valid_config_a_config_error_or_a_json_error(text):
    try:
        config_from_json(text)
    except (ConfigError, json.JSONDecodeError):
        pass


def _valid_configs():
    """Configs from the presets with overrides drawn from each field's own range."""
    ints = {k: st.integers(1, min(limit, 64)) for k, (limit, _) in LIMITS.items()}
    return st.builds(lambda preset, items: (preset, items), st.sampled_from(["tiny", "digits-demo", "omniglot-maml"]),
                     st.lists(st.sampled_from(sorted(ints)).flatmap(
                         lambda k: ints[k].map(lambda v: f"{k}={v}")), max_size=3)
                     | st.lists(st.sampled_from(["data.root", "train.out_dir", "train.init_from", "data.heldout"])
                                .flatmap(lambda k: st.text(max_size=10).map(lambda v: f"{k}={v}")), max_size=2)
                     | st.lists(st.sampled_from(["meta.inner_lr_g", "loss.gp_weight", "train.ema"]).flatmap(
                         lambda k: st.floats(0, 0.99).map(lambda v: f"{k}={v!r}")), max_size=2))


@FAST
@given(_valid_configs())
@example(("tiny", ["data.root=None "]))  # was stored as "None", read back as None
@example(("tiny", ["data.heldout= a, ,b"]))
def test_to_json_then_config_from_json_is_the_identity(case):
    preset, items = case
    try:
        cfg = apply_overrides(get_preset(preset), items)
    except ConfigError:
        assume(False)
    assert config_from_json(cfg.to_json()) == cfg
    assert from_dict(json.loads(cfg.to_json())) == cfg


# --- the image reader -------------------------------------------------------------------------------------------

def _image_bytes(fmt: str, mode: str, w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), color=None).save(buf, format=fmt)
    return buf.getvalue()


SEED_IMAGES = [_image_bytes(fmt, mode, 5, 3) for fmt, mode in
               [("PNG", "L"), ("PNG", "RGBA"), ("PNG", "I;16"), ("GIF", "P"), ("BMP", "RGB"), ("JPEG", "RGB"),
                ("TIFF", "F"), ("WEBP", "RGB")]]


def mutated(seeds: list[bytes]):
    """A seed file with a few bytes replaced, inserted or cut off: most get past the format's magic number."""
    def mutate(data: bytes, edits: list[tuple[int, int, int]], cut: int) -> bytes:
        b = bytearray(data)
        for kind, pos, byte in edits:
            pos %= max(1, len(b))
            if kind == 0:
                b[pos] = byte
            elif kind == 1:
                b.insert(pos, byte)
            else:
                del b[pos:pos + byte % 16]
        return bytes(b[:len(b) - cut % max(1, len(b))] if cut else b)
    return st.builds(mutate, st.sampled_from(seeds),
                     st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
                              max_size=6), st.integers(0, 64))


@SLOW
@given(st.one_of(st.binary(max_size=256), mutated(SEED_IMAGES)), st.sampled_from([1, 3]), st.booleans())
def test_read_image_gives_an_image_or_a_data_error(tmp_path, data, channels, invert):
    path = tmp_path / "x.img"
    path.write_bytes(data)
    try:
        x = read_image(path, 8, channels, invert)
    except DataError as e:
        assert str(path) in str(e)
        return
    assert x.dtype == torch.uint8 and tuple(x.shape) == (channels, 8, 8)


# --- the checkpoint reader --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint() -> bytes:
    """An untrained checkpoint of the tiny preset at width 2, with optimizer and RNG state: a few kB."""
    cfg = apply_overrides(get_preset("tiny"), ["model.z_dim=2", "model.g_width=2", "model.d_width=2"])
    with tempfile.TemporaryDirectory() as d:
        return ckpt.save(Path(d) / "c.safetensors", to_checkpoint(cfg, init_state(build_system(cfg)))).read_bytes()


def _header_edits(data: bytes, key: str, value: str) -> bytes:
    """The checkpoint with one metadata entry (or a tensor's shape) rewritten in its JSON header."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if key.startswith("shape:"):
        names = sorted(k for k in header if k != "__metadata__")
        header[names[int(key[6:]) % len(names)]]["shape"] = json.loads(value)
    else:
        header["__metadata__"][key] = value
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def checkpoint_inputs(seed: bytes):
    meta_keys = ["step", "config", "param_order", "opt_groups", "opt_extra", "has_optimizer", "format"]
    small_json = st.sampled_from(['-1', '"x"', '[]', '{}', 'null', 'true', '[1e999]', '[[0]]', '{"0": {"a": 1}}',
                                  '{"model": {"g_width": 1000000}}', '{"model": {"g_width": 8}}', '{"data": 5}',
                                  '[[2, 2]]', '[3]', '[1000000, 1000000]', '[-1]', '["g.fc.weight"]'])
    header = st.builds(lambda k, v: (k, v), st.sampled_from(meta_keys + [f"shape:{i}" for i in range(40)]),
                       small_json | st.text(max_size=10))
    return st.one_of(st.binary(max_size=200), mutated([seed]),
                     st.lists(header, min_size=1, max_size=3).map(lambda edits: _apply(seed, edits)))


def _apply(seed: bytes, edits) -> bytes:
    for key, value in edits:
        try:
            seed = _header_edits(seed, key, value)
        except (ValueError, TypeError):
            pass  # a shape that is not JSON: leave that edit out
    return seed


def test_checkpoint_reader_gives_a_checkpoint_or_a_checkpoint_error(tiny_checkpoint):
    assert ckpt.load(_write(tiny_checkpoint)).step == 0  # the seed itself loads

    @SLOW
    @given(checkpoint_inputs(tiny_checkpoint))
    def prop(data):
        try:
            ck = ckpt.load(_write(data))
        except CheckpointError as e:
            assert "\n" not in str(e)
            return
        assert isinstance(ck, ckpt.Checkpoint) and ck.step >= 0
        assert set(ck.meta) >= {"g", "d"} and ck.param_order == list(ckpt.expected_shapes(ck.config))
    prop()


_DIR = Path(tempfile.mkdtemp(prefix="metagan-props-"))


def _write(data: bytes) -> Path:
    path = _DIR / "c.safetensors"
    path.write_bytes(data)
    return path


def test_the_fuzz_harness_runs_libfuzzer_on_a_reader_and_counts_its_inputs(tmp_path):
    pytest.importorskip("atheris", reason="Atheris is not installed (pip install -e \".[fuzz]\"; Linux wheels only)")
    from metagan.perf.fuzz import check_checkpoint, check_image, fuzz, seeds

    for target, check in (("image", check_image), ("checkpoint", check_checkpoint)):
        for i, seed in enumerate(seeds(target)):  # the seeds pass their own checks
            (tmp_path / f"{target}-{i}").write_bytes(seed)
            check(tmp_path / f"{target}-{i}")
    (record,) = fuzz(["checkpoint"], seconds=2, out=tmp_path / "fuzz")
    assert record["exit_code"] == 0 and record["findings"] == [], record
    assert record["inputs"] > len(seeds("checkpoint")) and record["coverage"] > 0, record
