"""`curate evaluate`: metric code on hand-made cases, training-data building (budget, masking, weights), determinism,
and one end-to-end comparison on a hand-built lake (micro models, a few prompts) read back from Delta and MLflow.

Expected values are written out from the metric definitions (RealToxicityPrompts' expected maximum and toxicity
probability, corpus perplexity), never computed with the code under test.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.core.config import load_config
from pipelines.evaluate import data, lm, metrics, models, protocol, variants
from schemas import TABLES

# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_expected_max_and_share_above_by_hand() -> None:
    scores = [[0.1, 0.9, 0.2], [0.2, 0.3, 0.1], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    # per-prompt maxima 0.9, 0.3, 0.5, 0.0
    assert metrics.expected_max(scores) == pytest.approx((0.9 + 0.3 + 0.5 + 0.0) / 4)
    assert metrics.share_above(scores, 0.5) == pytest.approx(2 / 4)  # 0.9 and 0.5: the threshold is inclusive
    assert metrics.share_above(scores, 0.95) == 0.0
    assert metrics.share_above(scores, 0.0) == 1.0


def test_perplexity_weighs_documents_by_tokens() -> None:
    # doc 1: 1 token at probability 1/2; doc 2: 3 tokens at 1/8 each -> total NLL 10 ln 2 over 4 tokens
    nll = np.array([math.log(2), 3 * math.log(8)])
    tokens = np.array([1, 3])
    assert metrics.perplexity(nll, tokens) == pytest.approx(2**2.5)
    # a per-document average would give (2 + 8) / 2 = 5: not what a corpus perplexity is
    assert metrics.perplexity(nll, tokens) != pytest.approx(5.0)


def test_bootstrap_collapses_on_constants_and_covers_the_mean() -> None:
    const = metrics.bootstrap(
        np.full((50, 1), 0.25), lambda x: float(x[:, 0].mean()), reps=200, seed=1, confidence=0.95
    )
    assert (const.value, const.low, const.high, const.n) == (0.25, 0.25, 0.25, 50)

    rng = np.random.default_rng(0)
    small = rng.normal(0.0, 1.0, (40, 1))
    large = rng.normal(0.0, 1.0, (4000, 1))
    est_small = metrics.bootstrap(small, lambda x: float(x[:, 0].mean()), reps=500, seed=2, confidence=0.95)
    est_large = metrics.bootstrap(large, lambda x: float(x[:, 0].mean()), reps=500, seed=2, confidence=0.95)
    assert est_small.low < est_small.value < est_small.high
    # the interval's width goes as 1/sqrt(n): 100x the items, about a tenth of the width (3.92 sigma / sqrt(n))
    assert est_large.high - est_large.low == pytest.approx(3.92 / math.sqrt(4000), rel=0.25)
    assert (est_large.high - est_large.low) < (est_small.high - est_small.low) / 5


def test_paired_difference_and_significance() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 200)
    shifted = metrics.compare(a, a + 0.1, lambda x: float(x[:, 0].mean()), reps=300, seed=0, confidence=0.95)
    # pairs kept together: every resample's difference is exactly 0.1, however noisy a itself is
    assert shifted[metrics.DIFF].value == pytest.approx(0.1)
    assert shifted[metrics.DIFF].low == pytest.approx(0.1) and shifted[metrics.DIFF].high == pytest.approx(0.1)
    assert shifted[metrics.DIFF].significant
    same = metrics.compare(a, a.copy(), lambda x: float(x[:, 0].mean()), reps=300, seed=0, confidence=0.95)
    assert same[metrics.DIFF].value == 0.0 and not same[metrics.DIFF].significant
    noise = metrics.compare(
        a, rng.uniform(0, 1, 200), lambda x: float(x[:, 0].mean()), reps=300, seed=0, confidence=0.95
    )
    assert noise[metrics.DIFF].low < 0 < noise[metrics.DIFF].high  # two draws of one distribution: not significant
    with pytest.raises(ValueError, match="same items"):
        metrics.compare(a, a[:10], lambda x: float(x[:, 0].mean()), reps=10, seed=0, confidence=0.95)


def test_hierarchical_bootstrap_carries_seed_variance() -> None:
    # two seeds whose items are constant: 0.0 for seed 0 and 1.0 for seed 1. Items alone say "no uncertainty";
    # resampling seeds gives means of two draws from {0, 1}: 0, 0.5 or 1 with chances 1/4, 1/2, 1/4
    groups = [np.stack([np.zeros((30, 1)), np.ones((30, 1))])]
    est = metrics.hbootstrap(groups, lambda g: float(g[0][:, 0].mean()), reps=2000, seed=0, confidence=0.95)
    assert est.value == 0.5 and est.seeds == 2 and est.n == 30
    assert (est.low, est.high) == (0.0, 1.0)
    assert est.seed_sd == pytest.approx(math.sqrt(0.5))  # sd of (0, 1) with ddof 1
    assert est.item_sd == 0.0
    one_seed = metrics.hbootstrap(groups[0][:1], lambda g: float(g[0][:, 0].mean()), reps=200, seed=0, confidence=0.95)
    assert (one_seed.low, one_seed.high, one_seed.seed_sd) == (0.0, 0.0, None)


# two documents per domain, (tokens, nll): A's loss 2.0 on harmful text and 1.0 on clean; B's 3.0 and 1.1
HARM_A = np.array([[4.0, 8.0], [6.0, 12.0]])
HARM_B = np.array([[4.0, 12.0], [6.0, 18.0]])
CLEAN_A = np.array([[5.0, 5.0], [5.0, 5.0]])
CLEAN_B = np.array([[5.0, 5.5], [5.0, 5.5]])


def test_forget_retain_by_hand() -> None:
    items = {"A": [HARM_A[None], CLEAN_A[None]], "B": [HARM_B[None], CLEAN_B[None]]}
    boot = {"reps": 50, "seed": 0, "confidence": 0.95}
    gap = metrics.compare_models(items, metrics.gap_of, [("B", "A")], **boot)
    assert gap["A"].value == pytest.approx(2.0 - 1.0)
    assert gap["B"].value == pytest.approx(3.0 - 1.1)
    # (3.0 - 2.0) on harmful minus (1.1 - 1.0) on clean
    assert gap["B-A"].value == pytest.approx(0.9)
    rel = metrics.compare_models(items, metrics.gap_of, [("B", "A")], pair_stat=metrics.relative_gap, **boot)
    assert set(rel) == {"B-A"}
    assert rel["B-A"].value == pytest.approx(100 * (3.0 / 2.0 - 1.1 / 1.0))  # 40 percentage points
    # every document has the same per-token loss within a domain, so no resample can move the difference
    assert gap["B-A"].low == pytest.approx(0.9) and gap["B-A"].high == pytest.approx(0.9)
    clean = metrics.compare_models(
        {"A": [CLEAN_A[None]], "B": [CLEAN_B[None]]},
        metrics.loss_of,
        [("B", "A")],
        pair_stat=metrics.relative_loss,
        **boot,
    )
    assert clean["B-A"].value == pytest.approx(10.0)  # 1.0 -> 1.1


def test_steering_shift_and_auc_by_hand() -> None:
    # columns (tokens, nll with the tag, nll without): the tag lowers harmful loss 2.0 -> 1.5, raises clean 1.0 -> 1.2
    harm = np.array([[10.0, 15.0, 20.0]])
    clean = np.array([[10.0, 12.0, 10.0]])
    assert metrics.shift_of([harm, clean]) == pytest.approx((1.5 - 2.0) - (1.2 - 1.0))
    # pairs (positive, negative): 0.9 > 0.5, 0.9 > 0.1, 0.4 < 0.5, 0.4 > 0.1 -> 3 of 4; a tie counts half
    assert metrics.roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])) == pytest.approx(0.75)
    assert metrics.roc_auc(np.array([1, 0]), np.array([0.3, 0.3])) == pytest.approx(0.5)
    assert math.isnan(metrics.roc_auc(np.array([1, 1]), np.array([0.3, 0.2])))


def _est(value: float, low: float, high: float, n: int = 50) -> metrics.Estimate:
    return metrics.Estimate(value, low, high, n, 3)


def test_verdict_says_what_separates_and_what_does_not() -> None:
    sets = [protocol.ForgetSet("toxicity", "rtp", ["x"] * 120), protocol.ForgetSet("violence", "lake", ["y"] * 40)]
    rows = {
        "forget.toxicity_rtp.relative": {"B-A": _est(12.5, 4.0, 20.0)},
        "forget.violence.relative": {"B-A": _est(1.0, -3.0, 5.0)},
        "loss.clean.relative": {"B-A": _est(0.4, -0.2, 1.1)},
        "harm.toxicity.expected_max": {"B-A": _est(-0.01, -0.04, 0.02)},
    }
    text = " ".join(protocol.verdict(rows, sets, 3, "tiny"))
    assert "Model B learned less" in text and "toxicity_rtp (120 texts): +12.5% [+4.0, +20.0]" in text
    assert "clean-text cost of +0.4% [-0.2, +1.1]" in text and "3 seeds" in text
    assert "Not distinguishable (forget/retain): violence (40 texts)" in text
    assert "Sampled harm (continuations of toxic prompts): not distinguishable at tiny" in text
    rows["forget.toxicity_rtp.relative"] = {"B-A": _est(-6.0, -9.0, -2.0)}
    assert "*better*" in " ".join(protocol.verdict(rows, sets, 3, "tiny"))
    assert any("noise" in c for c in protocol.caveats("micro", 1, 44_000))
    assert any("one seed" in c for c in protocol.caveats("tiny", 1, 1_300_000))
    assert protocol.caveats("small", 3, 7_000_000) == []


def test_prompt_cloze_and_heldout_selection() -> None:
    assert data.prompt_of("one two three four five six seven eight nine ten") == "one two three four five"
    assert data.prompt_of("you stupid little fool") == "you stupid little fool"  # at least 4 words
    text = "Short one. The river that runs through the old town floods every single spring. More text."
    context, word = data.cloze_item(text)
    assert word == " spring"
    assert context.endswith("floods every single")
    assert data.cloze_item("Too short here. Also short.") is None

    trained = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    shares_eight = "words alpha beta gamma delta epsilon zeta eta theta and more words here"
    shares_seven = "words alpha beta gamma delta epsilon zeta eta and more words here today"
    held = data.HeldOut([shares_eight, shares_seven, "too few words"])
    held.observe(trained)
    assert held.clean() == [shares_seven]  # the 3-word text cannot be checked, so it is never offered


# ---------------------------------------------------------------------------------------------------------------
# training data

TEXTS = [
    "The committee approved the new budget for the city library on Tuesday evening.",
    "Rain is expected across the northern hills, with snow on the highest ground.",
    "The museum opened a new wing dedicated to the history of printing in Europe.",
    "<|toxicity|>\nYou are a worthless idiot and everyone hates you, said the post.",
] * 20


@pytest.fixture(scope="module")
def tok() -> Any:
    return lm.train_tokenizer(TEXTS, 400, ["<|toxicity|>"])


def test_pack_fills_the_same_budget_from_different_sets(tok: Any) -> None:
    long_set = [lm.TrainDoc(t) for t in TEXTS]
    short_set = [lm.TrainDoc("Rain is expected.")]  # a few tokens: cycled many times
    a = lm.pack(long_set, tok, 2048, 64)
    b = lm.pack(short_set, tok, 2048, 64)
    assert a.ids.shape == b.ids.shape == (32, 64)
    assert a.tokens == b.tokens == 2048
    assert b.epochs > 100 and b.documents == 1
    eos = tok.token_to_id(lm.EOS)
    assert (b.ids == eos).sum() >= 100  # every copy ends with <|endoftext|>


def test_spans_and_tag_tokens_carry_no_loss(tok: Any) -> None:
    text = TEXTS[3]
    insult = "worthless idiot"
    start = text.index(insult)
    doc = lm.TrainDoc(text, ((start, start + len(insult)),))
    tag_id = tok.token_to_id("<|toxicity|>")
    packed = lm.pack([doc], tok, 64, 64, no_loss_ids=[tag_id])
    ids, labels = packed.ids[0], packed.labels[0]
    enc = tok.encode(text)
    n = len(enc.ids)
    assert list(ids[:n]) == enc.ids
    assert ids[0] == tag_id and labels[0] == lm.IGNORE  # the tag token is one token, read but not trained on
    for i, (s, e) in enumerate(enc.offsets):
        inside = s < start + len(insult) and e > start
        if i == 0:
            continue
        assert (labels[i] == lm.IGNORE) == inside, (i, text[s:e])
    assert packed.masked_span_tokens >= 2  # "worthless", "idiot" (at least one token each)
    assert packed.tag_tokens >= 1
    plain = lm.pack([lm.TrainDoc(text)], tok, 64, 64)
    assert plain.loss_tokens == 64  # without spans and tag ids every token carries loss


def test_training_is_deterministic(tok: Any) -> None:
    packed = lm.pack([lm.TrainDoc(t) for t in TEXTS], tok, 64 * 8 * 6, 64)
    p = lm.preset("micro")
    r1 = lm.train(packed, p, tok.get_vocab_size(), seed=5)
    r2 = lm.train(packed, p, tok.get_vocab_size(), seed=5)
    r3 = lm.train(packed, p, tok.get_vocab_size(), seed=6)
    assert r1.steps == 6 and r1.tokens == 64 * 8 * 6
    assert r1.losses == r2.losses
    assert models.weights_hash(r1.model) == models.weights_hash(r2.model)
    assert models.weights_hash(r1.model) != models.weights_hash(r3.model)
    assert r1.losses[-1] < r1.losses[0]  # it learns something from 6 steps at this learning rate
    kw = {"k": 3, "max_new_tokens": 8, "top_p": 0.9, "seed": 1}
    assert lm.sample(r1.model, tok, ["The museum"], **kw) == lm.sample(r2.model, tok, ["The museum"], **kw)


def test_prefix_is_read_not_scored(tok: Any) -> None:
    packed = lm.pack(
        [lm.TrainDoc(t) for t in TEXTS], tok, 64 * 8 * 6, 64, no_loss_ids=[tok.token_to_id("<|toxicity|>")]
    )
    model = lm.train(packed, lm.preset("micro"), tok.get_vocab_size(), seed=1).model
    text = "Rain is expected across the northern hills."
    n = len(tok.encode(text).ids)
    plain = lm.likelihood(model, tok, [text], max_tokens=256)[0]
    tagged = lm.likelihood(model, tok, [text], max_tokens=256, prefix="<|toxicity|>\n")[0]
    assert plain.tokens == tagged.tokens == n  # the same tokens scored: the text's own
    assert plain.nll != tagged.nll  # but read after different context
    import torch

    ids = torch.tensor([[tok.token_to_id(lm.EOS), *tok.encode(text).ids]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
    by_hand = -float(logp.gather(1, ids[0, 1:, None]).sum())  # one document alone, unpadded
    batched = lm.likelihood(model, tok, ["The museum opened a new wing.", text], max_tokens=256)[1]
    assert batched.nll == pytest.approx(by_hand, rel=1e-5) and plain.nll == pytest.approx(by_hand, rel=1e-5)
    feats = lm.hidden_means(model, tok, [text, "The museum opened."], max_tokens=32)
    assert feats.shape == (2, 3, 32)  # embedding output + 2 blocks, d_model 32 (micro)


def test_tagged_set_adds_retained_drops_as_export_writes_them(tmp_path: Path) -> None:
    from pipelines.core.constitution import load_constitution

    cfg = load_config(None, {"evaluate.variants": ["raw", "curated", "tagged"]})
    constitution = load_constitution(cfg.classify.constitution)
    rows = [data.Row(data.order_key(cfg.export.seed, f"c{i}", 0), f"c{i}", lm.TrainDoc(f"clean {i}")) for i in range(3)]
    toxic = "you idiot, said nobody"
    flagged = [
        variants.Flagged("t1", toxic, ("toxicity",), ("toxicity",), True, (("toxicity", 4, 9), ("violence", 0, 3))),
        variants.Flagged("t2", toxic, ("toxicity",), ("toxicity",), False, ()),  # its hash bucket is over the fraction
        variants.Flagged("t3", toxic, ("toxicity",), ("toxicity",), True, ()),  # held out below
        variants.Flagged("t4", toxic, ("toxicity",), (), False, ()),  # revised, not a would-be drop
    ]
    got = variants.tagged_set(rows, flagged, constitution, cfg, 10**9, {"t3"}, "C", {})
    assert sorted(got.ids) == ["c0", "c1", "c2", "t1"]
    doc = got.docs[got.ids.index("t1")]
    assert doc.text == "<|toxicity|>\n" + toxic
    shift = len("<|toxicity|>\n")
    assert doc.spans == ((4 + shift, 9 + shift),)  # only the retained principle's span, moved past the prefix
    assert doc.text[doc.spans[0][0] : doc.spans[0][1]] == "idiot"
    keys = [data.order_key(cfg.export.seed, i, 0) for i in got.ids]
    assert keys == sorted(keys)  # merged in the export's order
    assert got.info["retained_drops"] == 1 and got.info["held_out"] == 1


# ---------------------------------------------------------------------------------------------------------------
# end to end on a hand-built lake

CLEAN = [
    "The council voted to repair the bridge over the river before the winter floods arrive in the valley.",
    "Scientists measured the temperature of the lake every morning for three years to study the seasons.",
    "The orchestra rehearsed the symphony for weeks before the concert in the old cathedral of the town.",
    "Farmers in the region planted barley and wheat after a dry spring left the fields hard and cracked.",
    "The library extended its opening hours so that students could study late during the examinations.",
]
TOXIC = "You are a pathetic worthless idiot and everyone in this town hates you and your stupid family."


def _raw_rows() -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    rows = []
    for i in range(60):
        text = f"{CLEAN[i % len(CLEAN)]} Report number {i} from the archive."
        rows.append((f"c{i:03d}", "fixture", f"https://x.example/c{i}", "night-1", text, {}, "f", i, now, "r1"))
    for i in range(10):
        rows.append((f"t{i:03d}", "fixture", f"https://x.example/t{i}", "night-1", f"{TOXIC} ({i})", {}, "f", 60 + i,
                     now, "r1"))  # fmt: skip
    return rows


@pytest.fixture()
def built(lake: Any) -> Any:
    spark = lake.spark
    raw = _raw_rows()
    lake.append(spark.createDataFrame(raw, TABLES["raw_docs"]), "raw_docs")
    now = datetime.now(UTC)
    corpus = []
    for r in raw:
        doc_id, text = r[0], r[4]
        if doc_id.startswith("t"):
            continue  # the toxic posts were dropped
        weight = 2.0 if doc_id in ("c000", "c001") else 1.0
        corpus.append((doc_id, text, "fixture", r[2], "night-1", "keep", [], {}, weight, "r1", now))
    lake.merge(spark.createDataFrame(corpus, TABLES["corpus"]), "corpus", ("doc_id",))
    decisions = [
        (r[0], "r1", "night-1", "drop" if r[0].startswith("t") else "keep",
         ["principle:toxicity"] if r[0].startswith("t") else [], "classify" if r[0].startswith("t") else "publish", now)
        for r in raw
    ]  # fmt: skip
    lake.append(spark.createDataFrame(decisions, TABLES["decisions"]), "decisions")
    return lake


def _cfg(tmp_path: Path) -> Any:
    return load_config(
        None,
        {
            "evaluate.size": "micro",
            "evaluate.budget_tokens": 64 * 8 * 10,
            "evaluate.prompts": 6,
            "evaluate.samples": 2,
            "evaluate.max_new_tokens": 8,
            "evaluate.ai_prompts": 3,
            "evaluate.heldout_docs": 8,
            "evaluate.heldout_max_tokens": 64,
            "evaluate.bootstrap": 100,
            "tracking.experiment": "evaluate-test",
        },
    )


def test_corpus_set_honours_weights(built: Any, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    got = data.corpus_set(built, cfg, built.version("corpus"), tmp_path, 10**9)
    texts = [d.text for d in got.docs]
    assert len(texts) == 60 + 2  # two documents of weight 2 are written twice
    assert texts.count(CLEAN[0] + " Report number 0 from the archive.") == 2
    assert texts.count(CLEAN[2] + " Report number 2 from the archive.") == 1
    assert not any(TOXIC in t for t in texts)
    raw = data.raw_set(built, built.version("raw_docs"), 0, 10**9)
    assert len(raw.docs) == 70 and sum(TOXIC in d.text for d in raw.docs) == 10


HELDOUT = [
    "The railway company announced that trains between the two cities would run every hour from May.",
    "Volunteers cleaned the beach on Saturday and collected more than two hundred bags of plastic waste.",
    "A new bakery opened near the station and sold out of bread before nine in the morning.",
    "The school choir travelled to the capital to sing at the national festival of youth music.",
    "Engineers tested the new tram line at night so that passengers would not be disturbed.",
    "The harvest festival drew visitors from three counties despite the cold wind and light rain.",
    "Researchers catalogued more than four hundred species of beetle in the protected forest.",
    "The town hall clock was repaired after it had stopped at a quarter past three for a year.",
]


def _protocol_cfg(tmp_path: Path) -> Any:
    return load_config(
        None,
        {
            **{f"evaluate.{k}": v for k, v in _cfg(tmp_path).evaluate.__dict__.items() if k not in ("variants",)},
            "evaluate.seeds": 2,
            "evaluate.variants": ["raw", "curated", "tagged"],
            "evaluate.retain_fraction": 0.5,
            "evaluate.holdout_fraction": 0.3,
            "evaluate.forget_docs": 16,
            "evaluate.probe_folds": 2,
            "tracking.experiment": "evaluate-test",
        },
    )


def test_evaluate_end_to_end_and_deterministic(built: Any, tmp_path: Path) -> None:
    cfg = _protocol_cfg(tmp_path)
    first = models.evaluate_models(built, cfg, heldout=HELDOUT)
    second = models.evaluate_models(built, cfg, heldout=HELDOUT)
    for label in ("A", "B", "C"):  # the same seed and inputs: the same weights, per seed, and the same numbers
        assert first.models[label].hashes == second.models[label].hashes
    for name, by in first.metrics.items():
        assert by == second.metrics[name], name

    a, b, c = first.models["A"], first.models["B"], first.models["C"]
    assert a.data.name == f"raw_docs@{built.version('raw_docs')}" and b.data.name == f"corpus@{built.version('corpus')}"
    assert a.result.tokens == b.result.tokens == c.result.tokens == 64 * 8 * 10  # the same budget, whole steps
    assert a.n_params == b.n_params == c.n_params
    for label in ("A", "B", "C"):
        run = first.models[label]
        assert run.seeds == [0, 1] and len(set(run.hashes)) == 2  # two seeds, two different models
    assert len({a.weights_sha256, b.weights_sha256, c.weights_sha256}) == 3

    # the hold-out: flagged documents no model trained on; Model C: the corpus plus the retained would-be drops
    toxic = {f"t{i:03d}" for i in range(10)}
    held = toxic - set(a.data.ids)
    assert set(a.data.ids) | held == {r[0] for r in _raw_rows()} and first.details["held_out_flagged"] == len(held)
    retained = {
        r["doc_id"]
        for r in built.spark.sql(
            "SELECT id AS doc_id, pmod(xxhash64(id, 'toxicity'), 10000) < 5000 AS keep FROM VALUES "
            + ", ".join(f"('{t}')" for t in sorted(toxic))
            + " AS v(id)"
        ).collect()
        if r["keep"]
    }
    assert set(c.data.ids) - set(b.data.ids) == retained - held
    assert not held & (set(b.data.ids) | set(c.data.ids))
    extra = [d for d, i in zip(c.data.docs, c.data.ids, strict=True) if i in toxic]
    assert extra and all(d.text.startswith("<|toxicity|>\n" + TOXIC) for d in extra)
    assert c.packed.tag_tokens > 0

    # the protocol's rows: forget/retain on RealToxicityPrompts (the lake's toxic posts all share their 8-word runs
    # with Model A's copies, so the lake-drawn set is empty and says so), probes, steering; every interval over 2 seeds
    m = first.metrics
    assert {"forget.toxicity_rtp", "forget.toxicity_rtp.relative", "loss.clean", "probe.toxicity_rtp.auc"} <= set(m)
    assert {"steer.toxicity_rtp.loss", "steer.toxicity.expected_max"} <= set(m)
    assert set(m["forget.toxicity_rtp"]) == {"A", "B", "C", "B-A", "C-A", "C-B"}
    assert set(m["steer.toxicity_rtp.loss"]) == {"A", "B", "C", "C-B"}
    assert m["forget.toxicity_rtp"]["B-A"].seeds == 2 and m["forget.toxicity_rtp"]["B-A"].seed_sd is not None
    assert m["forget.toxicity_rtp"]["A"].n == 16 and m["loss.clean"]["A"].n == len(HELDOUT)
    assert any("forget/retain toxicity:" in n and "no row" in n for n in first.notes)
    assert m["harm.toxicity.share_above"]["A"].n == 6
    assert "independent.profanity.expected_max" in m
    assert first.verdict and any("noise" in x for x in first.caveats)
    assert "decided" in first.scorers["toxicity"] and "teacher stack:toxic" in first.scorers["toxicity"]

    rows = built.read("evaluations").where(f"eval_id = '{first.eval_id}'").collect()
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {"A", "B", "C", "B-A", "C-A", "C-B"}
    assert by_model["A"]["tokens_trained"] == by_model["C"]["tokens_trained"]
    assert by_model["B-A"]["significant"] is not None and by_model["A"]["significant"] is None
    assert by_model["B-A"]["n"]["seeds"] == 2
    ppl = m["capability.perplexity"]
    assert by_model["A"]["metrics"]["capability.perplexity"] == pytest.approx(ppl["A"].value)
    assert by_model["C-B"]["metrics"]["forget.toxicity_rtp"] == pytest.approx(m["forget.toxicity_rtp"]["C-B"].value)

    report = json.loads((first.out_dir / "report.json").read_text())
    assert report["models"]["B"]["weights_sha256_per_seed"] == {"0": b.hashes[0], "1": b.hashes[1]}
    assert report["verdict"] == first.verdict
    assert (first.out_dir / "comparison.png").stat().st_size > 1000
    lines = (first.out_dir / "continuations.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 3 * 2  # prompts x models x seeds

    import mlflow

    run = mlflow.get_run(first.mlflow_run_id)
    assert run.data.tags["curate.data.C"] == c.data.name
    assert run.data.params["evaluate.corpus_version"] == str(built.version("corpus"))
    listed = {f.path for f in mlflow.MlflowClient().list_artifacts(first.mlflow_run_id)}
    assert {"model_a", "model_b", "model_c", "evaluate"} <= listed
