"""The low-data classifier (metagan.lowdata): equal updates per arm, paired random streams, online affine
augmentation, the generated share chosen on other classes, and the benchmark's arms and report."""
import json
from dataclasses import replace

import pytest
import torch
from test_evaluate import strokes

from metagan import lowdata
from metagan.evaluate import Protocol
from metagan.lowdata import ARMS, BATCH, choose_share, lowdata_accuracy

PROTO = Protocol(classes=4, lowdata_n=(5, 8), lowdata_generated=6, lowdata_updates=3, lowdata_share=0.25,
                 lowdata_shares=(0.25, 0.5, 0.75))
MARK = 0.25  # a generated image of all 0.25: no real image (uint8 / 127.5 - 1) or affine transform of one is that


def marker(support, n, g):
    return torch.full((n, *support.shape[1:]), MARK)


def greedy(support, n, g):
    """A method that draws much more randomness than it returns."""
    torch.rand(10_000, generator=g)
    return support[torch.randint(len(support), (n,), generator=g)].float()


@pytest.fixture
def recorded(monkeypatch):
    """Counts Adam steps, records each training batch the classifier sees and each batch random_affine gets."""
    rec = {"steps": 0, "batches": [], "affine": [], "affine_out": []}
    step = torch.optim.Adam.step

    def counting_step(self, *a, **k):
        rec["steps"] += 1
        return step(self, *a, **k)
    forward = lowdata.SmallCNN.forward

    def recording_forward(self, x):
        if self.training and len(x) > 1:  # len 1: the lazy head's materialisation
            rec["batches"].append(x.detach().clone())
        return forward(self, x)
    affine = lowdata.random_affine

    def recording_affine(x, g):
        out = affine(x, g)
        rec["affine"].append(x.clone())
        rec["affine_out"].append(out.clone())
        return out
    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    monkeypatch.setattr(lowdata.SmallCNN, "forward", recording_forward)
    monkeypatch.setattr(lowdata, "random_affine", recording_affine)
    return rec


def test_every_arm_gets_the_same_number_of_updates_of_full_batches(recorded):
    data = strokes(n_classes=4, per_class=12)
    for arm in ARMS:
        recorded.update(steps=0, batches=[])
        lowdata_accuracy(marker, data, [0, 1, 2, 3], PROTO, arms=(arm,))
        assert recorded["steps"] == PROTO.lowdata_updates * len(PROTO.lowdata_n), arm
        assert [len(b) for b in recorded["batches"]] == [BATCH] * recorded["steps"], arm


def test_online_affine_only_when_asked_and_affine_plus_generated_transforms_every_image(recorded):
    data = strokes(n_classes=4, per_class=12)
    n_gen = round(PROTO.lowdata_share * BATCH)
    # arm: (real images transformed, generated images transformed, generated images) per batch
    expected = {"none": (0, 0, 0), "affine": (BATCH, 0, 0), "generated": (0, 0, n_gen),
                "affine + generated": (BATCH - n_gen, n_gen, n_gen)}
    for arm, (real_t, gen_t, generated) in expected.items():
        recorded.update(batches=[], affine=[], affine_out=[])
        lowdata_accuracy(marker, data, [0, 1, 2, 3], replace(PROTO, lowdata_n=(5,)), arms=(arm,))
        assert len(recorded["batches"]) == PROTO.lowdata_updates
        per_batch = [n for n in (real_t, gen_t) if n]  # the transform's calls in each batch: real, then generated
        assert [len(x) for x in recorded["affine"]] == per_batch * PROTO.lowdata_updates, arm
        calls = len(per_batch)
        real_in = recorded["affine"][0::calls] if real_t else []
        gen_in = recorded["affine"][1::calls] if gen_t else []
        assert all((x != MARK).any(dim=(1, 2, 3)).all() for x in real_in)  # real images are never the marker
        assert all((x == MARK).all() for x in gen_in)  # the second call transforms the generated images
        for i, batch in enumerate(recorded["batches"]):
            if gen_t:  # the batch is [transformed real, transformed generated], not the stored images
                outs = recorded["affine_out"][calls * i:calls * (i + 1)]
                assert torch.equal(batch, torch.cat(outs)) and not (batch[-n_gen:] == MARK).flatten(1).all(1).any()
            else:
                assert int((batch == MARK).flatten(1).all(1).sum()) == generated, arm
            if real_t and not gen_t:
                assert torch.equal(batch, recorded["affine_out"][i])


def test_splits_and_real_only_arms_do_not_depend_on_the_method():
    data = strokes(n_classes=5, per_class=12)
    classes = [4, 0, 2, 1]
    seen = {}

    def recording(method):
        def gen(support, n, g):
            seen.setdefault(method, []).append(support.clone())
            return method(support, n, g)
        return gen
    cells = {m: lowdata._cell(recording(m), data, classes, 5, PROTO) for m in (marker, greedy)}
    a, b = cells[marker], cells[greedy]
    assert torch.equal(a.x, b.x) and torch.equal(a.test_x, b.test_x) and torch.equal(a.y, b.y)
    assert all(torch.equal(s, t) for s, t in zip(seen[marker], seen[greedy])) and len(seen[greedy]) == len(classes)
    # a class's split does not depend on which other classes are evaluated, nor on the order they come in
    alone = lowdata._cell(None, data, [2], 5, PROTO)
    assert torch.equal(alone.x, a.x[10:15]) and torch.equal(alone.test_x, a.test_x[14:21])
    # train and test images of a class are disjoint draws of its images, all of them used
    assert len(a.x) == 5 * len(classes) and len(a.test_x) == 7 * len(classes)
    # so the real-only arms of two methods are the same numbers; the generated arm is where they differ
    ra = lowdata_accuracy(marker, data, classes, PROTO, arms=("none", "affine", "generated"))
    rb = lowdata_accuracy(greedy, data, classes, PROTO, arms=("none", "affine", "generated"))
    assert ra["arms"]["none"] == rb["arms"]["none"] and ra["arms"]["affine"] == rb["arms"]["affine"]
    # and another protocol seed is another split
    assert not torch.equal(lowdata._cell(None, data, classes, 5, replace(PROTO, seed=1)).x, a.x)


def test_results_have_the_arms_keys():
    data = strokes(n_classes=4, per_class=12)
    with_gen = lowdata_accuracy(marker, data, [0, 1, 2, 3], PROTO)
    assert list(with_gen["arms"]) == ["generated", "affine + generated"] and with_gen["share"] == PROTO.lowdata_share
    assert all(set(acc) == {"5", "8"} and all(0 <= v <= 1 for v in acc.values()) for acc in with_gen["arms"].values())
    real_only = lowdata_accuracy(None, data, [0, 1, 2, 3], PROTO)
    assert list(real_only["arms"]) == ["none", "affine"] and real_only["share"] is None
    assert real_only["updates"] == PROTO.lowdata_updates
    with pytest.raises(ValueError, match="needs a generator"):
        lowdata_accuracy(None, data, [0, 1], PROTO, arms=("generated",))
    with pytest.raises(ValueError, match="unknown low-data arms"):
        lowdata_accuracy(marker, data, [0, 1], PROTO, arms=("mixup",))
    with pytest.raises(ValueError, match="leave real and generated"):
        lowdata_accuracy(marker, data, [0, 1], PROTO, arms=("generated",), share=1.0)


def test_share_chooser_picks_the_best_share_and_draws_the_pool_once(monkeypatch):
    data = strokes(n_classes=4, per_class=12)
    calls, trained = [], []

    def gen(support, n, g):
        calls.append(n)
        return marker(support, n, g)

    def fake_accuracy(cell, arm, share, n_classes, updates, seed):  # the constructed case: 0.5 is best
        trained.append((arm, share, len(cell.x)))
        return {0.25: 0.6, 0.5: 0.8, 0.75: 0.7}[share]
    monkeypatch.setattr(lowdata, "_arm_accuracy", fake_accuracy)
    chosen = choose_share(gen, data, [0, 1, 2], PROTO)
    assert chosen == {"share": 0.5, "acc": {"0.25": 0.6, "0.5": 0.8, "0.75": 0.7}, "n": 5, "classes": 3}
    assert calls == [PROTO.lowdata_generated] * 3  # one pool per class, for every share
    assert trained == [("generated", s, 15) for s in (0.25, 0.5, 0.75)]  # at the smallest n only
    monkeypatch.setattr(lowdata, "_arm_accuracy", lambda cell, arm, share, *a: 0.5)
    assert choose_share(gen, data, [0, 1], PROTO)["share"] == 0.25  # a tie goes to the smaller share


def test_benchmark_rows_arms_share_from_validation_and_paired_report(tmp_path, monkeypatch):
    from conftest import omniglot_dir

    from metagan import benchmark
    from metagan import evaluate as ev
    omniglot = omniglot_dir()
    proto = replace(PROTO, classes=6, samples=12, support_draws=2, n_way=6, episodes=10, proto_generated=3,
                    lowdata_n=(5,), lowdata_updates=2, lowdata_shares=(0.25, 0.5))
    monkeypatch.setitem(ev.PROTOCOLS, "small", proto)
    splits, real_split = [], benchmark.omniglot.split_dataset

    def fake_split(root, split, **kw):  # the validation split: small fake classes
        splits.append(split)
        return strokes(n_classes=8, per_class=12) if split == "validation" else real_split(root, split, **kw)
    monkeypatch.setattr(benchmark.omniglot, "split_dataset", fake_split)
    real_method = benchmark._method_generator

    def method(name, *a, **k):
        return (greedy, {}) if name == "metagan-fomaml" else real_method(name, *a, **k)
    monkeypatch.setattr(benchmark.omniglot, "_method_generator", method)
    res = benchmark.run_benchmark("omniglot", "small", tmp_path, data_root=str(omniglot), shots=(1,), progress=False,
                                  log=lambda m: None, methods=["no-augmentation", "affine", "metagan-fomaml"],
                                  lowdata_seeds=2)
    assert splits.count("validation") == 1  # read once, for the one method with generated images
    rows = res["methods"]
    assert list(rows["no-augmentation"]["k"]["1"]["lowdata"]["arms"]) == ["none"]
    assert list(rows["affine"]["k"]["1"]["lowdata"]["arms"]) == ["affine"]
    ours = rows["metagan-fomaml"]
    assert list(ours["k"]["1"]["lowdata"]["arms"]) == ["generated", "affine + generated"]
    assert ours["lowdata_share"]["split"] == "validation" and set(ours["lowdata_share"]["acc"]) == {"0.25", "0.5"}
    assert ours["k"]["1"]["lowdata"]["share"] == ours["lowdata_share"]["share"] == ours["lowdata_seeds"]["share"]
    assert rows["no-augmentation"]["lowdata_share"] is None and rows["affine"]["lowdata_share"] is None
    # repeats per arm: seed 0 is the table's run
    sp = ours["lowdata_seeds"]["acc"]
    assert set(sp) == {"generated", "affine + generated"} and all(len(v) == 2 for v in sp.values())
    assert sp["generated"][0] == ours["k"]["1"]["lowdata"]["arms"]["generated"]["5"]
    md = (tmp_path / "results.md").read_text()
    assert "## Low-data arms" in md and "| none | affine | generated | affine + generated |" in md
    none = rows["no-augmentation"]["lowdata_seeds"]["acc"]["none"]
    aff = rows["affine"]["lowdata_seeds"]["acc"]["affine"]
    both = sp["affine + generated"]
    over_none = 100 * sum(x - y for x, y in zip(both, none)) / 2
    over_affine = 100 * sum(x - y for x, y in zip(both, aff)) / 2
    line = next(x for x in md.splitlines() if x.startswith("| metagan-fomaml | affine + generated |"))
    assert f"| {over_none:+.1f} ± " in line and f"| {over_affine:+.1f} ± " in line
    json.dumps(res)


def test_earlier_versions_keep_only_the_rows_the_current_protocol_did_not_change():
    from metagan.benchmark import upgrade_results
    from metagan.evaluate import PROTOCOL_VERSION

    def row(*arms):
        return {"k": {"1": {"lowdata": {"arms": {a: {"5": 0.5} for a in arms}} if arms else None}}}
    methods = {"real": row(), "no-augmentation": row("none"), "affine": row("affine"),
               "pretrain-only": row("generated"), "metagan-metasgd": row("generated", "affine + generated")}
    assert PROTOCOL_VERSION == 4
    for version, kept in ((2, ["real", "no-augmentation"]), (3, ["real", "no-augmentation", "pretrain-only"])):
        old = {"protocol_version": version, "methods": methods}
        new = upgrade_results(old)
        assert new["protocol_version"] == 4 and new["upgraded_from"] == version
        assert list(new["methods"]) == kept
        assert old["methods"]["metagan-metasgd"] and upgrade_results(new) == new  # the input untouched; idempotent
    assert upgrade_results({"protocol_version": 1, "methods": methods})["methods"] == methods