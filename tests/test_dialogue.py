"""The dialogue domain: conversation readers, the topic split, the byte tokenizer, likelihoods, the problem behind
the meta-learners, training with exact resume, replies from the command line, metrics and the suite (the
chatterbot corpus itself needs the `dialogue` extra)."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch

if importlib.util.find_spec("yaml") is None or importlib.util.find_spec("sacrebleu") is None:
    pytest.skip("the dialogue domain reads YAML conversations and scores replies with sacrebleu: pip install -e "
                "\".[dialogue]\" (CI installs both through the test extra)", allow_module_level=True)

from metagan.cli import main
from metagan.dialogue import data as ddata
from metagan.dialogue.config import apply_overrides, get_preset
from metagan.dialogue.data import load_corpus, read_conversations
from metagan.dialogue.problem import reply_nll
from metagan.dialogue.tasks import TaskSampler, heldout_parts, make_split
from metagan.dialogue.tokens import EOS, PAD, VOCAB, decode, encode_prompt, encode_reply, pair, split
from metagan.dialogue.train import build_system, init_meta, nll_bytes, read, train
from metagan.errors import ConfigError, DataError
from metagan.meta import meta_gradients, sample_noise

WORDS = {"en": ["cat", "dog", "sun", "rain", "tea", "code", "book", "song"],
         "el": ["γάτα", "σκύλος", "ήλιος", "βροχή", "τσάι", "βιβλίο", "τραγούδι", "κώδικας"]}


def write_corpus(root, topics=4, exchanges=8):
    """Language folders of chatterbot YAML topic files: topic j of language l talks about WORDS[l][j] and
    WORDS[l][j + 4]; each file holds exchanges // 2 conversations of three turns (two exchanges each)."""
    for lang, words in WORDS.items():
        (root / lang).mkdir(parents=True, exist_ok=True)
        for j in range(topics):
            lines = ["categories:", f"- t{j}", "conversations:"]
            for c in range(exchanges // 2):
                w = words[j] if c % 2 else words[(j + 4) % len(words)]
                lines += [f"- - tell me {c}", f"  - {w} {w} {c}", f"  - more {w}"]
            (root / lang / f"t{j}.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_corpus_reader_turns_conversations_into_exchanges_and_counts_malformed(corpus, tmp_path):
    topics = load_corpus(corpus)
    assert [t.name for t in topics][:2] == ["el/t0", "el/t1"] and len(topics) == 8
    en0 = next(t for t in topics if t.name == "en/t0")
    assert en0.language == "en" and len(en0.exchanges) == 8
    assert en0.exchanges[:2] == [("tell me 0", "tea tea 0"), ("tea tea 0", "more tea")]
    bad = write_corpus(tmp_path / "bad", topics=1)
    with open(bad / "en" / "t0.yml", "a") as f:
        f.write("- a string, not a list of turns\n")
    t = next(t for t in load_corpus(bad) if t.name == "en/t0")
    assert t.skipped == 1 and len(t.exchanges) == 8
    with pytest.raises(DataError, match="conversation 5"):  # a user's own file is read strictly
        read_conversations(bad / "en" / "t0.yml")


def test_user_conversations_from_yaml_jsonl_and_folders_with_clear_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"prompt": "hi", "reply": "hello"}\n\n{"prompt": "ça va?", "reply": "oui"}\n')
    (tmp_path / "b.yml").write_text("conversations:\n- - q\n  - r\n")
    topic = read_conversations(tmp_path)
    assert topic.exchanges == [("hi", "hello"), ("ça va?", "oui"), ("q", "r")]
    cases = [("x.jsonl", '{"prompt": "hi"}\n', "reply"), ("x.jsonl", "not json\n", "not JSON"),
             ("x.yml", "conversations: 3\n", "no list"), ("x.yml", "a: [b\n", "not readable YAML"),
             ("x.yml", "conversations: []\n", "no exchanges"), ("x.txt", "hi", ".yml")]
    for name, text, match in cases:
        (tmp_path / "one").mkdir(exist_ok=True)
        f = tmp_path / "one" / name
        f.write_text(text)
        with pytest.raises(DataError, match=match):
            read_conversations(f)
        f.unlink()
    with pytest.raises(DataError, match="no conversation files"):
        read_conversations(tmp_path / "one")


def test_missing_corpus_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(ddata.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="dialogue"):
        load_corpus()


def test_split_holds_out_whole_topics_per_language(corpus):
    topics = load_corpus(corpus) + [ddata.Topic("zz/only", "zz", [("a", "b")] * 9)]
    s = make_split(topics, min_exchanges=8, seed=0)
    names = {k: {t.name for t in v} for k, v in s.items()}
    assert [len(names[k]) for k in ("train", "valid", "eval")] == [7, 0, 2]
    assert not names["train"] & names["eval"] and "zz/only" in names["train"]  # a lone language trains only
    assert {t.language for t in s["eval"]} == {"en", "el"}
    assert names == {k: {t.name for t in v} for k, v in make_split(topics, 8, 0).items()}
    with pytest.raises(DataError, match="min_exchanges"):
        make_split(topics, 100, 0)
    held = heldout_parts(s["eval"][0], seed=0, pool=4)
    parts = [held.pool, held.query, held.classifier]
    assert [len(p) for p in parts] == [4, 2, 2] and sorted(sum(parts, [])) == sorted(s["eval"][0].exchanges)
    assert held.real == []
    bench = heldout_parts(s["eval"][0], seed=0, pool=4, real_pool=True)  # the benchmark's cut: a real pool too
    parts = [bench.pool, bench.query, bench.real, bench.classifier]
    assert [len(p) for p in parts] == [4, 1, 2, 1] and sorted(sum(parts, [])) == sorted(s["eval"][0].exchanges)
    assert bench.pool == held.pool
    with pytest.raises(DataError, match="at least 7"):
        heldout_parts(ddata.Topic("zz/six", "zz", [("a", "b")] * 6), 0, pool=4, real_pool=True)


def test_bytes_cover_every_script_with_fixed_lengths():
    text = "Привет, 世界!"
    r = encode_reply(text, 40)
    assert r.shape == (40,) and decode(r) == text and int((r == EOS).sum()) == 1 and r[-1] == PAD
    cut = encode_reply("世界", 6)  # 5 bytes fit: one whole character and a cut one, which decoding drops
    assert decode(cut) == "世" and cut[5] == EOS
    p, rr = split(pair("hi", "yo", 4, 4)[None], 4)
    assert p.tolist() == [[104, 105, PAD, PAD]] and rr.tolist() == [[121, 111, EOS, PAD]]
    assert encode_prompt("abc", 2).tolist() == [97, 98]


def test_reply_likelihood_by_hand():
    """Logits that ignore the position: log p(byte) = b[byte] - logsumexp(b); EOS counts, PAD does not."""
    b = torch.zeros(VOCAB)
    b[97] = math.log(2.0)
    replies = encode_reply("ab", 5)[None]  # a, b, EOS, PAD, PAD
    total, count = reply_nll(b.expand(1, 5, VOCAB), replies)
    lse = math.log(VOCAB - 1 + 2)
    assert count == 3 and float(total) == pytest.approx((lse - math.log(2)) + lse + lse, rel=1e-6)


def _tiny(learner, extra=()):
    cfg = apply_overrides(get_preset("dialogue-tiny"), [f"meta.learner={learner}", *extra])
    if learner == "metasgd":
        cfg = apply_overrides(cfg, ["meta.first_order=false"])
    return cfg


def _batch(corpus, cfg, system, seed=0):
    split_ = make_split(load_corpus(corpus), cfg.data.min_exchanges, 0)
    t = cfg.task
    g = torch.Generator().manual_seed(seed)
    batch = TaskSampler(split_["train"], t.k_shot, t.query, cfg.data.prompt_len, cfg.data.reply_len).sample(3, g)
    batch["noise"] = sample_noise(3, system.learner.sched, t.k_shot, t.query, system.problem.z_dim, g)
    return batch


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("learner", ["maml", "fomaml", "reptile", "metasgd", "joint"])
def test_meta_gradients_reach_both_players_and_vmap_equals_loop(corpus, learner, copy):
    cfg = _tiny(learner, [f"model.copy={copy}"])
    system = build_system(cfg)
    meta = init_meta(system, 0)
    batch = _batch(corpus, cfg, system)
    vm, aux = meta_gradients(system.learner, meta, batch, "vmap")
    lp, _ = meta_gradients(system.learner, meta, batch, "loop")
    for group in meta:
        for k, v in vm[group].items():
            assert torch.allclose(v, lp[group][k], atol=1e-5, rtol=1e-4), (group, k)
        assert sum(float(v.abs().sum()) for v in vm[group].values()) > 0, f"no meta-gradient reaches {group}"
    assert set(aux) >= ({"inner_d", "inner_g"} if learner == "reptile" else {"d_loss", "g_loss", "nll"})


def test_first_order_metasgd_closed_form_equals_the_unrolled_meta_gradient(corpus, metasgd_closed_form_check):
    """dialogue-gan-metasgd's learner (first order, per-tensor rates) on the reply GAN."""
    from metagan.functional import index
    cfg = _tiny("maml")
    system = build_system(cfg)
    meta = init_meta(system, 0)
    task = index(_batch(corpus, cfg, system), 0)
    metasgd_closed_form_check(system.problem, system.learner.sched, meta["g"], meta["d"], task)


def test_plain_language_model_never_runs_the_discriminator(corpus):
    cfg = _tiny("fomaml", ["loss.inner_adv=0", "loss.outer_adv=0", "meta.n_d=0"])
    system = build_system(cfg)
    assert system.problem.z_dim == cfg.model.z_dim  # no Gumbel noise: nothing is sampled
    grads, aux = meta_gradients(system.learner, init_meta(system, 0), _batch(corpus, cfg, system), "vmap")
    assert all(float(v.abs().sum()) == 0 for v in grads["d"].values()) and float(aux["d_loss"]) == 0
    assert float(grads["g"]["out_b"].abs().sum()) > 0


def test_straight_through_samples_are_one_hot_padded_after_eos_and_pass_gradients():
    cfg = get_preset("dialogue-tiny")
    system = build_system(cfg)
    meta = init_meta(system, 0)
    pg, pd = meta["g"], meta["d"]
    pg["out_b"] = pg["out_b"].clone()
    pg["out_b"][EOS] = 3.0  # EOS likely early
    prompts = torch.stack([encode_prompt("hi", cfg.data.prompt_len)] * 6)
    z = torch.randn(6, system.problem.z_dim, generator=torch.Generator().manual_seed(0))
    y = system.problem.sample(pg, prompts, z)
    assert torch.equal(y.sum(-1), torch.ones(6, cfg.data.reply_len)) and set(y.unique().tolist()) <= {0.0, 1.0}
    tok = y.argmax(-1)
    for row in tok.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1:])
    assert (tok == EOS).any()
    g = torch.func.grad(lambda p: system.problem.g_adv(p, pd, prompts, z))(pg)
    assert float(g["out_w"].abs().sum()) > 0 and float(g["emb"].abs().sum()) > 0


def test_retrieve_and_edit_never_reads_its_own_exchange():
    """A support row's likelihood with the whole support set as memory equals it with its own exchange removed from
    the memory (the inner loop's leave-one-out); a query row reads every slot; bad memory is refused."""
    cfg = apply_overrides(get_preset("dialogue-tiny"), ["model.copy=true"])
    system = build_system(cfg)
    prob, pg = system.problem, init_meta(system, 0)["g"]
    d = cfg.data
    rows = torch.stack([pair(p, r, d.prompt_len, d.reply_len) for p, r in
                        [("hi", "tea tea"), ("yo", "cat"), ("hey", "dog dog"), ("hm", "sun")]])
    z = torch.zeros(1, cfg.model.z_dim)
    for i in range(4):
        alone = prob.nll(pg, rows[i:i + 1], z, rows)
        without = prob.nll(pg, rows[i:i + 1], z, torch.cat([rows[:i], rows[i + 1:]]))
        assert torch.allclose(alone, without, atol=1e-6), i
    assert prob.memory(rows, rows)[2].diagonal().logical_not().all()
    assert prob.memory(rows, n=3)[2].all() and prob.memory(rows, n=3)[2].shape == (3, 4)
    with pytest.raises(ValueError, match="memory"):
        prob.nll(pg, rows, z.expand(4, -1))  # a retrieve-and-edit generator without its supports


def test_retrieve_and_edit_learns_to_copy_a_word_it_never_saw(tmp_path):
    """Topics whose replies repeat one random word: trained jointly for 60 steps (K drawn from 1..2), the
    retrieve-and-edit generator gives a held-out topic's replies a far lower likelihood loss from two of its
    exchanges than the same generator without the memory, which cannot know the word."""
    rnd = torch.Generator().manual_seed(0)
    (tmp_path / "c" / "xx").mkdir(parents=True)
    for j in range(24):
        w = "".join(chr(97 + int(i)) for i in torch.randint(0, 16, (4,), generator=rnd))
        (tmp_path / "c" / "xx" / f"t{j:02d}.yml").write_text(
            "conversations:\n" + "".join(f"- - hi {c}\n  - {w}\n" for c in range(12)))
    topics = load_corpus(tmp_path / "c")
    nll = {}
    for copy in (False, True):
        cfg = apply_overrides(get_preset("dialogue-tiny"), [
            "meta.learner=joint", "train.steps=60", "train.ckpt_every=60", f"model.copy={copy}", "task.k_min=1",
            "model.hidden=16", "model.embed=8", "meta.outer_lr_g=0.02", "task.meta_batch=4"])
        _, _, meta, _ = read(train(cfg, tmp_path / "runs", name=f"c{copy}", topics=topics, log=lambda *a: None),
                             last=True)
        system, d = build_system(cfg), cfg.data
        held = make_split(topics, d.min_exchanges, 0)["eval"]
        assert held
        per = [nll_bytes(system, meta["g"], r[2:], r[:2]) for t in held
               for r in [torch.stack([pair(p, x, d.prompt_len, d.reply_len) for p, x in t.exchanges])]]
        nll[copy] = sum(s / n for s, n in per) / len(per)
    assert nll[True] < 0.5 * nll[False], nll


def _same(a, b):
    return all(torch.equal(a[g][k], b[g][k]) for g in a for k in a[g])


def test_training_resumes_exactly_and_replies_from_the_command_line(corpus, tmp_path, capsys):
    cfg = apply_overrides(get_preset("dialogue-tiny"), [f"data.source={corpus}"])
    full = train(cfg, tmp_path / "a", name="full")
    half = train(apply_overrides(cfg, ["train.steps=2"]), tmp_path / "b", name="half")
    train(cfg, resume=half)
    assert _same(read(full, last=True)[2], read(half, last=True)[2])
    assert read(half, last=True)[1] == 4
    steps = [json.loads(x)["step"] for x in (half / "log.jsonl").read_text().splitlines() if "time" in x]
    assert steps == [1, 2, 3, 4]
    assert main(["train", "--preset", "dialogue-tiny", "--data-dir", str(corpus), "--out-dir", str(tmp_path / "r"),
                 "--no-progress", "--set", "train.steps=1"]) == 0
    run = next((tmp_path / "r").iterdir())
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"prompt": "tell me", "reply": "tea tea"}\n{"prompt": "more", "reply": "more tea"}\n')
    capsys.readouterr()
    assert main(["reply", "--checkpoint", str(run), "--conversations", str(mine), "--prompt", "a", "--prompt",
                 "b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("a\t") and lines[1].startswith("b\t")
    assert main(["reply", "--checkpoint", str(run), "--conversations", str(mine), "--prompt", "a",
                 "--temperature", "0.3"]) == 0
    assert capsys.readouterr().out.startswith("a\t")
    assert main(["reply", "--checkpoint", str(run), "--conversations", str(mine), "--prompt", "a",
                 "--temperature", "0"]) == 2
    assert "positive temperature" in capsys.readouterr().err
    assert main(["reply", "--checkpoint", str(run), "--conversations", str(mine), "--repeat", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "reply-adapt-latency"
    assert main(["reply", "--checkpoint", str(run), "--conversations", str(tmp_path / "none.yml")]) == 2
    assert "no conversations" in capsys.readouterr().err
    assert main(["reply", "--checkpoint", str(tmp_path), "--conversations", str(mine)]) == 2
    with pytest.raises(ConfigError, match="min_exchanges"):
        apply_overrides(cfg, ["data.min_exchanges=2"])


def test_text_metrics_by_hand():
    from metagan.dialogue.baselines import retrieve
    from metagan.dialogue.metrics import TextClassifier, bleu, copy_rate, distinct, self_bleu, tokens

    assert distinct(["a b a", "a c"], 1, "en") == pytest.approx(3 / 5)
    assert distinct(["a b a", "a c"], 2, "en") == pytest.approx(3 / 3)
    assert tokens("我爱你", "chinese") == ["我", "爱", "你"] and tokens("I love you.", "en")[-1] == "."
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"], "en") == pytest.approx(100.0)
    # 3 / 5 unigrams and 1 / 4 bigrams match, no trigram (of 3) or 4-gram (of 2): sacrebleu's exp smoothing
    # counts those as 1 / (2 x 3) and 1 / (4 x 2); brevity penalty 1 (5 tokens against 4)
    want = 100 * math.exp((math.log(3 / 5) + math.log(1 / 4) + math.log(1 / 6) + math.log(1 / 8)) / 4)
    assert bleu(["the cat is on mat"], ["the cat sat mat"], "en") == pytest.approx(want, rel=1e-4)
    assert self_bleu(["x y z w", "x y z w"], "en") == pytest.approx(100.0) and math.isnan(self_bleu(["a"], "en"))
    assert copy_rate(["hi ", "yo"], ["hi", "hey"]) == 0.5
    clf = TextClassifier(["cat cat", "the cat", "dog dog", "a dog"], ["c", "c", "d", "d"])
    assert clf.predict(["cats"]) == ["c"] and clf.accuracy(["dog", "cat"], "d") == 0.5
    assert retrieve(["hello there", "what is ai"], ["hi!", "a field"], ["what's ai?", "hello"]) == ["a field", "hi!"]


def test_suite_small_budget_on_a_written_corpus(corpus, tmp_path):
    from metagan.dialogue.suite import run_suite

    topics = load_corpus(write_corpus(tmp_path / "c", topics=5, exchanges=24))
    res = run_suite(tmp_path / "out", "small", topics=topics, log=lambda *a: None)
    per, n = res["per"], len(res["header"]["topics"])
    assert n == 2 and set(per) == {"real", "support-copy", "retrieval", "no-adapt", "finetune", "lm-fomaml",
                                   "gan-fomaml", "gan-metasgd"}
    assert all(len(rows) == n * 2 for rows in per.values())  # topics x K in (1, 5) x 1 draw
    assert all(r["copy"] == 1.0 for r in per["retrieval"]) and all(r["chrf"] < 100.0 for r in per["real"])
    assert all(r["ppl"] > 1 and r["adapt_ms"] > 0 for r in per["finetune"])
    for topic in res["header"]["topics"]:  # no-adapt takes no gradient step but reads the supports as its memory
        ppl = {r["k"]: r["ppl"] for r in per["no-adapt"] if r["topic"] == topic}
        tuned = {r["k"]: r["ppl"] for r in per["finetune"] if r["topic"] == topic}
        assert ppl[1] != ppl[5] and tuned[5] != ppl[5]
    text = (tmp_path / "out" / "results.md").read_text()
    assert "| gan-metasgd |" in text and "gan-fomaml - finetune" in text
    with pytest.raises(ConfigError, match="another protocol"):
        run_suite(tmp_path / "out", "full", topics=topics, log=lambda *a: None)


def _unique_topics():
    """Two languages x 5 topics of 24 exchanges whose replies differ in their first bytes (so a reply's text,
    even cut to the small budget's 11 bytes, names its exchange), each topic's replies sharing its words."""
    topics = []
    for lang, words in WORDS.items():
        for j in range(5):
            w, v = words[j], words[(j + 3) % len(words)]
            ex = [(f"tell me {i} {w}", f"{i} {w} {v}") for i in range(24)]
            topics.append(ddata.Topic(f"{lang}/t{j}", lang, ex))
    return topics


def test_real_row_is_other_real_replies_of_the_topic_never_the_references(tmp_path):
    """The `real` reference row answers each query prompt with a reply of the topic's real pool: never the
    reference it is scored against (nor a support or classifier reply), so its BLEU is far from 100."""
    from metagan.dialogue.suite import BUDGETS, _cut, real_replies, run_suite

    lr = int(next(o for o in BUDGETS["small"]["overrides"] if o.startswith("data.reply_len=")).split("=")[1])
    topics = _unique_topics()
    res = run_suite(tmp_path / "out", "small", methods=["real"], topics=topics, log=lambda *a: None)
    assert res["header"]["protocol"] == 2 and set(res["per"]) == {"real"}
    by_name = {t.name: t for t in topics}
    for r in res["per"]["real"]:
        held = heldout_parts(by_name[r["topic"]], 0, real_pool=True)
        refs = {p: _cut(x, lr) for p, x in held.query}
        pool = {_cut(x, lr) for _, x in held.real}
        others = {_cut(x, lr) for part in (held.pool, held.query, held.classifier) for _, x in part}
        assert r["examples"] and all(h != refs[p] and h in pool and h not in others for p, h in r["examples"])
        assert r["bleu"] < 60.0 and r["chrf"] < 90.0  # the references against themselves: chrF 100
    held = heldout_parts(by_name[res["header"]["topics"][0]], 0, real_pool=True)
    n = len(held.query)
    a = real_replies(held, n, torch.Generator().manual_seed(3), 64)
    assert a == real_replies(held, n, torch.Generator().manual_seed(3), 64) and len(set(a)) == n
    assert not set(a) & {x for part in (held.pool, held.query, held.classifier) for _, x in part}
    with pytest.raises(ConfigError, match="real pool"):
        real_replies(heldout_parts(held.topic, 0), n, torch.Generator(), 64)  # the two-way cut has none
    old = json.loads((tmp_path / "out" / "results.json").read_text())
    old["header"].pop("protocol")  # a folder of the earlier protocol (real row = the references) is not resumed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="version 1"):
        run_suite(tmp_path / "old", "small", methods=["real"], topics=topics, log=lambda *a: None)


HAS_CORPUS = importlib.util.find_spec("chatterbot_corpus") is not None


@pytest.mark.skipif(not HAS_CORPUS, reason="the chatterbot corpus is read from its package: pip install -e "
                                           "\".[dialogue]\" (CI installs it through the test extra)")
def test_chatterbot_corpus_topics_and_split():
    topics = load_corpus()
    assert len(topics) == 237 and len({t.language for t in topics}) == 28
    assert sum(len(t.exchanges) for t in topics) == 11_953 and sum(t.skipped for t in topics) == 10
    s = make_split(topics, 20, 0)
    assert [len(s[k]) for k in ("train", "valid", "eval")] == [112, 13, 28]
    assert {t.language for t in s["eval"]} <= {t.language for t in s["train"]}


@pytest.mark.parametrize("eos_grad", [True, False])
def test_end_of_reply_passes_adversarial_gradient_only_with_eos_grad(eos_grad):
    """The bytes after a sampled EOS are PAD; with model.eos_grad=false they carry no gradient (the cut is
    constant), so a discriminator cannot teach G to shorten replies; the sampled bytes are the same either way."""
    cfg = apply_overrides(get_preset("dialogue-tiny"), [f"model.eos_grad={eos_grad}"])
    system = build_system(cfg)
    pg = dict(init_meta(system, 0)["g"])
    pg["out_b"] = pg["out_b"].clone()
    pg["out_b"][EOS] = 5.0  # EOS early, so most replies have bytes after the cut
    prompts = torch.stack([encode_prompt("hi", cfg.data.prompt_len)] * 8)
    z = torch.randn(8, system.problem.z_dim, generator=torch.Generator().manual_seed(0))
    y = system.problem.sample(pg, prompts, z)
    tok = y.argmax(-1)
    after = torch.cumsum((tok == EOS).int(), 1) - (tok == EOS).int() > 0  # positions after the first EOS
    assert after.any()
    g = torch.func.grad(lambda p: (system.problem.sample(p, prompts, z)[..., PAD] * after).sum())(pg)
    moved = sum(float(v.abs().sum()) for v in g.values())
    assert (moved > 0) == eos_grad
    other = build_system(apply_overrides(cfg, [f"model.eos_grad={not eos_grad}"]))
    assert torch.equal(other.problem.sample(pg, prompts, z), y)


def test_warm_start_copies_both_players_keeps_the_rest_and_checks_shapes(corpus, tmp_path):
    from metagan.dialogue.train import warm_start
    from metagan.errors import CheckpointError

    cfg = apply_overrides(get_preset("dialogue-tiny"), [f"data.source={corpus}", "train.steps=1",
                                                        "meta.learner=joint"])
    src = train(cfg, tmp_path, name="joint")
    want = read(src)[2]
    msgd = build_system(apply_overrides(cfg, ["meta.learner=metasgd"]))
    fresh = init_meta(msgd, 1)
    warm = warm_start(fresh, src)
    assert _same({g: warm[g] for g in ("g", "d")}, want) and not _same({"g": fresh["g"]}, {"g": warm["g"]})
    assert _same({g: warm[g] for g in ("lr_g", "lr_d")}, {g: fresh[g] for g in ("lr_g", "lr_d")})
    # train.init_from reaches the training loop: with outer rates 0 the meta-parameters stay the source's
    run = train(apply_overrides(cfg, ["meta.learner=fomaml", f"train.init_from={src}", "meta.outer_lr_g=0",
                                      "meta.outer_lr_d=0"]), tmp_path, name="warm")
    assert _same(read(run, last=True)[2], want)
    with pytest.raises(CheckpointError, match="same model sizes"):
        warm_start(init_meta(build_system(apply_overrides(cfg, ["model.hidden=6"])), 0), src)
