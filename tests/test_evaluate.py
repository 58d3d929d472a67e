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
from pipelines.evaluate import data, lm, metrics, models
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


def test_evaluate_end_to_end_and_deterministic(built: Any, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    heldout = [
        "The railway company announced that trains between the two cities would run every hour from May.",
        "Volunteers cleaned the beach on Saturday and collected more than two hundred bags of plastic waste.",
    ] * 4
    first = models.evaluate_models(built, cfg, heldout=heldout)
    second = models.evaluate_models(built, cfg, heldout=heldout)

    a, b = first.models["A"], first.models["B"]
    assert a.data.name == f"raw_docs@{built.version('raw_docs')}" and b.data.name == f"corpus@{built.version('corpus')}"
    assert a.result.tokens == b.result.tokens == 64 * 8 * 10  # the same budget, whole steps
    assert a.n_params == b.n_params
    for label in ("A", "B"):
        assert first.models[label].weights_sha256 == second.models[label].weights_sha256
    assert a.weights_sha256 != b.weights_sha256
    for name, by in first.metrics.items():
        for label in ("A", "B", metrics.DIFF):
            assert by[label] == second.metrics[name][label], name
    assert {"harm.toxicity.expected_max", "capability.perplexity", "positive.aligned_ai.share_above"} <= set(
        first.metrics
    )
    assert first.metrics["harm.toxicity.share_above"]["A"].n == 6
    assert first.metrics["capability.perplexity"]["A"].n == 2  # the held-out texts, deduplicated
    assert "independent.profanity.expected_max" in first.metrics

    rows = built.read("evaluations").where(f"eval_id = '{first.eval_id}'").collect()
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {"A", "B", "B-A"}
    assert by_model["A"]["tokens_trained"] == by_model["B"]["tokens_trained"]
    assert by_model["B-A"]["significant"] is not None and by_model["A"]["significant"] is None
    ppl = first.metrics["capability.perplexity"]
    assert by_model["B-A"]["metrics"]["capability.perplexity"] == pytest.approx(ppl["B"].value - ppl["A"].value)
    assert by_model["A"]["metrics"]["capability.perplexity"] == pytest.approx(ppl["A"].value)

    report = json.loads((first.out_dir / "report.json").read_text())
    assert report["models"]["B"]["weights_sha256"] == b.weights_sha256
    assert (first.out_dir / "comparison.png").stat().st_size > 1000

    import mlflow

    run = mlflow.get_run(first.mlflow_run_id)
    assert run.data.tags["curate.data.A"] == a.data.name
    assert run.data.params["evaluate.corpus_version"] == str(built.version("corpus"))
    listed = {f.path for f in mlflow.MlflowClient().list_artifacts(first.mlflow_run_id)}
    assert {"model_a", "model_b", "evaluate"} <= listed
