"""The ratings domain: interaction readers, the cold-start protocol, metrics, the problems behind the meta-learners,
training and recommending from the command line, and the MovieLens-100K suite (needs the `rec` extra)."""
from __future__ import annotations

import importlib.util
import json
import zipfile

import pytest
import torch

from metagan.cli import main
from metagan.errors import ConfigError, DataError
from metagan.meta import meta_gradients, sample_noise
from metagan.ratings.config import apply_overrides, get_preset
from metagan.ratings.data import load_interactions
from metagan.ratings.metrics import ndcg, ranking_metrics
from metagan.ratings.tasks import Protocol, UserTask, make_split, sparse_batch
from metagan.ratings.train import build_system, init_meta


def write_ml100k(folder, users=40, items=30, seed=0):
    """GroupLens-shaped u.data / u.item / u.user: user u rates 13 + u % 10 items (user 0 only 5: filtered out)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for u in range(1, users + 1):
        n = 5 if u == 1 else 13 + u % 10
        for j, i in enumerate(torch.randperm(items, generator=g)[:n].tolist()):
            rows.append(f"{u}\t{i + 1}\t{1 + (u + i) % 5}\t{1000 * u + j}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    (folder / "u.item").write_text("".join(f"{i + 1}|Film {i + 1} (199{i % 10})|01-Jan-199{i % 10}||url|"
                                           + "|".join("1" if k == i % 19 else "0" for k in range(19)) + "\n"
                                           for i in range(items)))
    (folder / "u.user").write_text("".join(f"{u}|{20 + u}|{'MF'[u % 2]}|job{u % 3}|0000\n"
                                           for u in range(1, users + 1)))
    return folder


@pytest.fixture(scope="module")
def ml(tmp_path_factory):
    return write_ml100k(tmp_path_factory.mktemp("ml") / "ml-100k")


def test_readers_agree_on_grouplens_folder_zip_recbole_and_csv(ml, tmp_path):
    folder = load_interactions(ml)
    zpath = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in ("u.data", "u.item", "u.user"):
            z.write(ml / name, f"ml-100k/{name}")
    zipped = load_interactions(zpath)
    lines = (ml / "u.data").read_text().splitlines()
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "x.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(lines))
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n" + "\n".join(ln.replace("\t", ",") for ln in lines))
    dat = tmp_path / "ratings.dat"
    dat.write_text("\n".join(ln.replace("\t", "::") for ln in lines))
    for other in (zipped, load_interactions(rec), load_interactions(csv), load_interactions(dat)):
        assert torch.equal(other.users, folder.users) and torch.equal(other.items, folder.items)
        assert torch.equal(other.ratings, folder.ratings) and torch.equal(other.times, folder.times)
    first = lines[0].split("\t")
    assert folder.user_ids[0] == first[0] and folder.item_ids[0] == first[1] and folder.ratings[0] == float(first[2])
    assert folder.item_genres.shape == (30, 19) and folder.item_genres.sum(1).eq(1).all()
    assert zipped.user_feats.shape == (40, 3) and (zipped.user_feats > 0).all()


@pytest.mark.parametrize("text, match", [("1\t2\n", "columns"), ("a,b,c\n1,2,x\n", "not a number"),
                                         ("1,2,nan\n", "not finite"), ("", "empty")])
def test_bad_interaction_files_are_refused(tmp_path, text, match):
    (tmp_path / "ratings.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        load_interactions(tmp_path / "ratings.csv")


def test_missing_source_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="movielens-100k"):
        load_interactions(tmp_path / "nowhere")


def test_split_filters_users_splits_8_1_1_and_queries_the_latest(ml):
    data = load_interactions(ml)
    split = make_split(data, Protocol(), seed=3)
    users = {name: {t.user for t in tasks} for name, tasks in split.items()}
    assert sum(map(len, users.values())) == 39  # user "1" has 5 interactions: filtered out
    assert [len(users[s]) for s in ("train", "valid", "test")] == [31, 4, 4]
    assert not (users["train"] & users["test"]) and not (users["valid"] & users["test"])
    for t in split["test"]:
        rows = (data.users == t.user).nonzero()[:, 0]
        times = data.times[rows].sort().values
        q_rows = [int(rows[(data.items[rows] == i).nonzero()[0, 0]]) for i in t.q_items.tolist()]
        assert sorted(data.times[q_rows].tolist()) == times[-10:].tolist()  # the 10 latest
        assert len(t.s_items) == len(rows) - 10 and int(t.relevant.sum()) == 5
        top = t.q_ratings[t.relevant].min()
        assert (t.q_ratings[~t.relevant] <= top).all()  # the relevant five are the best rated
    clicks = make_split(data, Protocol(clicks=True), seed=3)["test"][0]
    assert torch.equal(clicks.relevant, clicks.q_ratings >= 4) and set(clicks.s_labels.tolist()) <= {0.0, 1.0}
    assert make_split(data, Protocol(), seed=3)["test"][0].q_items.tolist() == split["test"][0].q_items.tolist()


def _task(ratings, relevant):
    r = torch.tensor(ratings, dtype=torch.float32)
    return UserTask(0, torch.tensor([0]), torch.tensor([0.5]), torch.tensor([3.0]), torch.arange(len(r)),
                    (r - 1) / 4, r, torch.tensor(relevant))


def test_ranking_metrics_by_hand():
    t = _task([5, 1, 4, 2, 3], [True, False, True, False, False])
    perfect = ranking_metrics(torch.tensor([0.9, 0.1, 0.8, 0.2, 0.3]), t, clicks=False)
    assert perfect["ndcg@5"] == pytest.approx(1.0) and perfect["mrr@5"] == 1.0 and perfect["mae"] == pytest.approx(
        torch.tensor([4 * 0.9 + 1 - 5, 1.4 - 1, 4.2 - 4, 1.8 - 2, 2.2 - 3]).abs().mean().item())
    # relevant items ranked 2nd and 4th: DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    m = ranking_metrics(torch.tensor([0.15, 0.9, 0.8, 0.1, 0.7]), t, clicks=True)
    want = (1 / torch.log2(torch.tensor(3.0)) + 1 / torch.log2(torch.tensor(5.0))) / (1 + 1 / torch.log2(
        torch.tensor(3.0)))
    assert m["ndcg@5"] == pytest.approx(float(want)) and m["mrr@5"] == 0.5 and "mae" not in m
    assert ranking_metrics(torch.zeros(5), _task([1, 2, 3, 1, 2], [False] * 5), clicks=True)["ndcg@10"] == 0.0
    assert ndcg(torch.tensor([0.0, 1.0]), 1, 1) == 0.0  # the relevant item is outside the top 1


@pytest.fixture(scope="module")
def tiny_gan(ml):
    data = load_interactions(ml)
    split = make_split(data, Protocol(), seed=0)
    cfg = apply_overrides(get_preset("ratings-tiny"), ["meta.learner=maml", "task.meta_batch=3", "meta.inner_steps=2"])
    system = build_system(cfg, data.n_items, data)
    batch = sparse_batch(split["train"][:3])
    noise = sample_noise(3, system.learner.sched, cfg.task.fakes, cfg.task.fakes, system.problem.z_dim,
                         torch.Generator().manual_seed(0))
    return data, cfg, system, {**batch, "noise": noise}


def test_gan_meta_gradients_reach_every_parameter_and_vmap_equals_loop(tiny_gan):
    data, cfg, system, tasks = tiny_gan
    meta = init_meta(system, 0)
    grads, aux = meta_gradients(system.learner, meta, tasks, "vmap")
    loop, _ = meta_gradients(system.learner, meta, tasks, "loop")
    for group in ("g", "d"):
        for k, v in grads[group].items():
            assert v.abs().sum() > 0, f"no meta-gradient reaches {group}.{k}"
            assert torch.allclose(v, loop[group][k], atol=1e-5, rtol=1e-4), k
    assert set(aux) >= {"d_loss", "g_loss", "inner_d", "inner_g"}


def test_first_order_metasgd_closed_form_equals_the_unrolled_meta_gradient(tiny_gan, metasgd_closed_form_check):
    """movielens-gan-metasgd's learner (first order, per-tensor rates) on the ratings GAN, which adapts the head
    only: the rates of the parameters it does not adapt get no gradient either way."""
    from metagan.functional import index
    data, cfg, system, tasks = tiny_gan
    meta = init_meta(system, 0)
    metasgd_closed_form_check(system.problem, system.learner.sched, meta["g"], meta["d"], index(tasks, 0))


def test_gan_inner_loop_adapts_only_the_head_and_lowers_the_support_error(tiny_gan):
    data, cfg, system, tasks = tiny_gan
    meta = init_meta(system, 0)
    prob, support = system.problem, tasks["support"][0]
    noise = {k: v[0] for k, v in tasks["noise"].items()}
    lr = {k: 2.0 for k in meta["g"]}
    pg, pd, _ = prob.inner_loop(meta["g"], meta["d"], lr, {k: 0.1 for k in meta["d"]}, support, noise,
                                system.learner.sched, True)
    changed = {k for k in pg if not torch.equal(pg[k], meta["g"][k])}
    assert changed == {"mix.weight", "mix.bias", "out_b"}
    err = lambda p: prob.g_loss(p, pd, torch.zeros(1, prob.z_dim), support, support, 0.0)  # noqa: E731
    assert err(pg) < err(meta["g"])


def test_melu_adapts_the_decision_layers_only(ml):
    data = load_interactions(ml)
    split = make_split(data, Protocol(), seed=0)
    cfg = apply_overrides(get_preset("movielens-melu"), ["model.hidden=8", "model.embed=4", "meta.learner=fomaml"])
    system = build_system(cfg, data.n_items, data)
    meta = init_meta(system, 0)
    assert set(meta["g"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"}
    support = sparse_batch(split["test"][:1])["support"][0]
    pg, pd, _ = system.problem.inner_loop(meta["g"], meta["d"], {k: 1.0 for k in meta["g"]}, {}, support, {},
                                          system.learner.sched, True)
    assert pd is meta["d"] and not torch.equal(pg["out.bias"], meta["g"]["out.bias"])
    with pytest.raises(ConfigError, match="Reptile"):
        apply_overrides(cfg, ["meta.learner=reptile"])


def test_train_recommend_and_time_from_the_command_line(ml, tmp_path, capsys):
    assert main(["train", "--preset", "ratings-tiny", "--data-dir", str(ml), "--out-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    run = next((tmp_path / "runs").iterdir())
    assert (run / "best.safetensors").is_file() and (run / "checkpoint.safetensors").is_file()
    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\n1,5\n2,1\n3,4\n")
    capsys.readouterr()
    assert main(["recommend", "--checkpoint", str(run), "--ratings", str(ratings), "--top", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    items = [ln.split("\t")[1] for ln in lines]
    assert len(items) == 5 and not {"1", "2", "3"} & set(items)
    scores = [float(ln.split("\t")[2]) for ln in lines]
    assert scores == sorted(scores, reverse=True)
    assert main(["recommend", "--checkpoint", str(run), "--ratings", str(ratings), "--repeat", "2"]) == 0
    assert '"median_ms"' in capsys.readouterr().out
    assert main(["recommend", "--checkpoint", str(run), "--ratings", str(tmp_path / "none.csv")]) == 2
    assert "no ratings file" in capsys.readouterr().err
    ratings.write_text("999,5\n")
    assert main(["recommend", "--checkpoint", str(run), "--ratings", str(ratings)]) == 2
    assert "not in the model's catalogue" in capsys.readouterr().err


def test_training_resumes_exactly_from_the_command_line(ml, tmp_path, capsys):
    """4 steps equal 2 steps, a stop and 2 resumed steps to the bit: meta-parameters, Adam's moments, the task
    stream (each meta-batch redraws its users' queries from it) and the validation-best checkpoint."""
    from metagan import checkpoint as ckpt
    from metagan.ratings.train import FORMAT

    run = ["train", "--preset", "ratings-tiny", "--data-dir", str(ml), "--no-progress", "--set", "train.ckpt_every=2"]
    assert main([*run, "--out-dir", str(tmp_path / "full"), "--set", "train.steps=4"]) == 0
    assert main([*run, "--out-dir", str(tmp_path / "half"), "--set", "train.steps=2"]) == 0
    full, half = next((tmp_path / "full").iterdir()), next((tmp_path / "half").iterdir())
    assert main(["train", "--resume", str(half), "--no-progress", "--set", "train.steps=4"]) == 0
    for name in (ckpt.FILENAME, ckpt.BEST):
        a, b = ckpt.load_domain(full / name, FORMAT), ckpt.load_domain(half / name, FORMAT)
        assert a.step == b.step and a.metadata == b.metadata
        assert all(torch.equal(a.meta[g][k], b.meta[g][k]) for g in a.meta for k in a.meta[g])
    a, b = ckpt.load_domain(full, FORMAT, last=True), ckpt.load_domain(half, FORMAT, last=True)
    assert a.step == 4 and a.config == b.config and torch.equal(a.rng_state, b.rng_state)
    assert all(torch.equal(v, b.optimizer["state"][i][k]) for i, s in a.optimizer["state"].items() for k, v in s.items())
    logged = [json.loads(x)["step"] for x in (half / "log.jsonl").read_text().splitlines() if '"time"' in x]
    assert logged == [1, 2, 3, 4]
    capsys.readouterr()
    assert main(["train", "--resume", str(half), "--set", "model.hidden=3"]) == 2
    assert "its own config: drop model.hidden=3" in capsys.readouterr().err


def test_benchmark_order_chooses_the_query_protocol(ml, tmp_path, capsys):
    """--order random reaches the suite: the folder's protocol says so, and the test users' queries differ from the
    time order's (so item-mean scores them differently); other suites refuse the flag."""
    results = {}
    for order in ("time", "random"):
        out = tmp_path / order
        assert main(["benchmark", "--suite", "movielens-100k", "--data-dir", str(ml), "--out", str(out), "--order",
                     order, "--methods", "item-mean", "--budget", "small"]) == 0
        results[order] = json.loads((out / "results.json").read_text())
        assert results[order]["header"]["order"] == order
    per = {o: r["per_user"]["ratings"]["item-mean"]["0"] for o, r in results.items()}
    assert len(per["time"]) == len(per["random"]) > 0 and per["time"] != per["random"]
    capsys.readouterr()
    assert main(["benchmark", "--suite", "omniglot", "--out", str(tmp_path / "o"), "--order", "random"]) == 2
    assert "drop --order" in capsys.readouterr().err


def test_benchmark_seeds_adds_seeds_to_a_folder(ml, tmp_path, capsys):
    """--seeds N runs seeds 0..N-1; a folder that has seed 0 keeps it and gains seed 1; other suites refuse it."""
    out = tmp_path / "s"
    args = ["benchmark", "--suite", "movielens-100k", "--data-dir", str(ml), "--out", str(out), "--methods",
            "item-mean", "--budget", "small"]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())["per_user"]["ratings"]["item-mean"]
    assert list(first) == ["0"]
    assert main([*args, "--seeds", "2"]) == 0
    both = json.loads((out / "results.json").read_text())["per_user"]["ratings"]["item-mean"]
    assert sorted(both) == ["0", "1"] and both["0"] == first["0"]
    capsys.readouterr()
    assert main(["benchmark", "--suite", "omniglot", "--out", str(tmp_path / "o"), "--seeds", "3"]) == 2
    assert "drop --seeds" in capsys.readouterr().err


def test_vmapped_adaptation_matches_one_user_at_a_time(tiny_gan):
    from metagan.ratings.train import adapt_batch

    data, cfg, system, tasks = tiny_gan
    meta = init_meta(system, 0)
    batch = {"support": tasks["support"], "query": tasks["query"]}
    both = adapt_batch(system, meta, batch, 2, torch.Generator().manual_seed(1))
    one = adapt_batch(system, meta, {k: v[:1] for k, v in batch.items()}, 2, torch.Generator().manual_seed(1))
    assert both.shape == (3, data.n_items) and torch.allclose(both[0], one[0], atol=1e-5)


HAS_REC = importlib.util.find_spec("recbole") is not None


@pytest.mark.skipif(not HAS_REC, reason="the movielens-100k suite reads MovieLens-100K from the RecBole wheel: "
                                        "pip install -e \".[rec]\" (CI installs it through the test extra)")
def test_movielens_100k_from_recbole_and_the_suite(tmp_path):
    from metagan.ratings.suite import run_suite

    data = load_interactions("movielens-100k")
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1682)
    split = make_split(data, Protocol(), seed=0)
    assert [len(split[s]) for s in ("train", "valid", "test")] == [466, 58, 58]  # 582 users with 13-100 ratings
    res = run_suite(tmp_path, "small", methods=["random", "item-mean"], log=lambda *a: None)
    per = res["per_user"]["ratings"]
    assert len(per["item-mean"]["0"]) == 58
    mean = lambda name: sum(u["ndcg@5"] for u in per[name]["0"]) / 58  # noqa: E731
    assert mean("item-mean") > mean("random") + 0.03
    assert "| item-mean | 1 |" in (tmp_path / "results.md").read_text()
