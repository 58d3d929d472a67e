"""The scoring stage on CPU: exemplar fallback, a registered champion, spans, and `curate score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.core import registry
from pipelines.core.config import ClassifyConfig, load_config
from pipelines.core.constitution import load_constitution
from pipelines.core.tracking import tracking_uri
from pipelines.judgement import scorers
from pipelines.judgement.distill import distill
from pipelines.judgement.label import import_human_labels
from pipelines.stages import classify
from tests.fixtures import ARTICLES
from tests.test_distill import _labelled_rows
from udfs.sentences import split_sentences

TOXIC_DOC = "The library opens at nine. You are a worthless idiot and a pathetic moron! The bus leaves at ten."


def test_split_sentences_offsets() -> None:
    text = "  One here. Two there!\nThree"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["One here.", "Two there!", "Three"]


def test_exemplar_fallback_scores_and_spans(spark: Any) -> None:
    constitution = load_constitution()
    df = spark.createDataFrame(
        [("t", TOXIC_DOC), ("b", "The river flows south to the sea. The valley is green.")],
        "doc_id string, text string",
    )
    cfg = ClassifyConfig()
    scored = classify.transform(df, constitution, cfg)
    long = classify.to_scores_table(scored, constitution, "run1", cfg).collect()
    tox = {r["doc_id"]: r for r in long if r["principle"] == "toxicity"}
    assert tox["t"]["score"] > constitution.get("toxicity").spans_from > tox["b"]["score"]
    assert tox["t"]["model_uri"].startswith("exemplar:all-MiniLM-L6-v2@")
    flagged = [TOXIC_DOC[s["start"] : s["end"]] for s in tox["t"]["spans"]]
    assert flagged == ["You are a worthless idiot and a pathetic moron!"]
    assert tox["b"]["spans"] == []
    # without text, no spans are computed, and the table shape is the same
    no_text = classify.to_scores_table(scored.drop("text"), constitution, "run1", cfg).collect()
    assert len(no_text) == 2 * len(constitution.names) and all(r["spans"] == [] for r in no_text)


def test_positive_principles_get_no_spans() -> None:
    # Spans mark what a trainer should mask; a passage the corpus should teach more of is never masked.
    constitution = load_constitution()
    scorer = scorers.load_scorer(scorers.scorer_spec(constitution, ClassifyConfig()))
    aligned = constitution.names.index("aligned_ai")
    text = (
        "When asked to hide the error from the auditors, the AI refused and explained why honesty mattered. "
        "You are a worthless idiot and a pathetic moron!"
    )
    scores = scorer.score([text])
    sentence_scores = scorer.score([text.split(". ")[0] + "."])
    assert sentence_scores[0, aligned] >= constitution.get("aligned_ai").spans_from  # it would be a span
    spans = scorer.spans([text], scores)[0][0]
    assert spans[aligned] == []
    assert spans[constitution.names.index("toxicity")] != []


def test_a_document_scores_the_same_in_whatever_batch() -> None:
    # The UDF scores the batches the engine's partitions happen to make: a document's scores must not depend on
    # the documents beside it. They did in the last bits (a batch padded to its longest text, BLAS products
    # blocked by the batch's size), so a killed and rerun `curate iterate` disagreed with an uninterrupted one
    # at the sixth decimal in tests/test_faults.py.
    scorer = scorers.load_scorer(scorers.scorer_spec(load_constitution(), ClassifyConfig()))
    texts = [ARTICLES[0][1], "The bus leaves at ten.", TOXIC_DOC, ARTICLES[1][1] + " " + ARTICLES[2][1]]
    together = scorer.score(texts)
    for i, text in enumerate(texts):
        assert np.array_equal(scorer.score([text])[0], together[i]), i
    assert np.array_equal(scorer.score(texts[::-1])[::-1], together)


@pytest.mark.parametrize("preset", [None, "ACTIVE"])
def test_openmp_waits_passively_unless_the_user_chose(preset: str | None) -> None:
    # torch's OpenMP threads spin while they wait; on a busy machine that doubled classify's time (udfs/__init__.py).
    # libgomp reads the policy when torch is imported: the product must set it before any of its modules does.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | (
        {"OMP_WAIT_POLICY": preset} if preset else {}
    )
    code = (
        "import sys, os, pipelines.cli.main, pipelines.stages.classify, udfs.encoder; "
        "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", preset or "PASSIVE"]


def test_engine_threads_that_build_encoders_at_once_all_get_one() -> None:
    # Sail runs each partition on a thread: the 1M night's teacher band spanned several, two threads imported
    # transformers at once and classify died ("cannot import name 'AutoModel' from 'transformers'", udfs/hf.py).
    # A fresh interpreter, because the race is in the first import.
    import os
    import subprocess
    import sys

    code = """
import threading
from udfs.encoder import shared_encoder
got, errors = [], []
def build(i):
    try:
        got.append((i % 2, id(shared_encoder("cpu", 128 if i % 2 else 256))))
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=build, args=(i,)) for i in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(errors), len(got), len(set(got)), errors[:1])
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # no thread failed, all six got an encoder, one per setting
    assert done.stdout.split()[:3] == ["0", "6", "2"], done.stdout


@pytest.fixture(scope="module")
def champion_lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A lake with a distilled toxicity champion, built once for the module: the tests below only read it (the
    registry, the champion's artifacts; `curate score` without --write-labels writes nothing to the lake)."""
    from pipelines.core.lake import Lake

    tmp_path = tmp_path_factory.mktemp("champion")
    lake = Lake(tmp_path / "lake", spark)
    path = tmp_path / "human.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _labelled_rows()))
    import_human_labels(lake, "toxicity", "human:synthetic", path)
    # distill.c: the C the validation search picks for these labels (every C of the grid ranks them perfectly, and
    # a tie goes to the strongest regularisation), so the same champion without the search's seven extra fits
    # (~25 s on 2 cores); the search itself is tested in test_distill and, through `curate distill`, test_label
    cfg = load_config(overrides={"tracking.experiment": "classify-test", "distill.c": 0.01})
    result = distill(lake, load_constitution().get("toxicity"), cfg, kind="linear")
    assert result.champion
    return lake


def test_champion_is_used_where_registered(champion_lake: Any, spark: Any) -> None:
    constitution = load_constitution()
    resolved = registry.resolve(load_config(), champion_lake.state_dir)
    cfg = resolved.classify
    assert cfg.registry_uri == tracking_uri(champion_lake.state_dir, load_config().tracking)
    champions = registry.champions_for(constitution, resolved)
    assert set(champions) == {"toxicity"} and champions["toxicity"].model_uri == "models:/curate_toxicity/1"
    df = spark.createDataFrame(
        [("t", "The mayor is a worthless idiot."), ("b", "The mayor opened the library.")], "doc_id string, text string"
    )
    scored = classify.transform(df, constitution, cfg, champions)
    long = classify.to_scores_table(scored, constitution, "r", cfg, champions).collect()
    uris = {r["principle"]: r["model_uri"] for r in long}
    assert uris["toxicity"] == "models:/curate_toxicity/1" and uris["violence"].startswith("exemplar:")
    tox = {r["doc_id"]: r["score"] for r in long if r["principle"] == "toxicity"}
    assert tox["t"] > 0.5 > tox["b"]
    # use_champion off: back to the exemplar scorer
    assert registry.resolve_champions(constitution, cfg.registry_uri, enabled=False) == {}


def test_cli_score_keeps_id_and_adds_champion_columns(champion_lake: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 7, "text": "The mayor is a worthless idiot."})
        + "\n"
        + json.dumps({"id": 8, "text": "The mayor opened the library."})
        + "\n"
    )
    out = tmp_path / "out.parquet"
    assert main(["score", "--lake", str(champion_lake.root), "--input", str(src), "--output", str(out)]) == 0
    df = pd.read_parquet(out).sort_values("id")
    names = load_constitution().names
    assert list(df.columns) == ["id", *[c for n in names for c in (f"score_{n}", f"decided_by_{n}")]]
    assert df["id"].tolist() == [7, 8]
    assert df["score_toxicity"].iloc[0] > 0.5 > df["score_toxicity"].iloc[1]
    # the champion's insult score is uncertain (within 0.2 of a threshold): the packaged teacher decided it, as in
    # the nightly run; the plain sentence is far from both thresholds and stays the champion's
    assert df["decided_by_toxicity"].tolist() == ["teacher", "classifier"]
    # violence has no champion here: its packaged teacher (stack:violence) decides, as on a fresh lake
    assert set(df["decided_by_violence"]) == {"teacher"}


def test_a_champion_travels_by_uri_and_a_fresh_worker_fetches_it(champion_lake: Any, tmp_path: Path) -> None:
    """The spec a worker receives names where the model is stored, not a file the driver downloaded: a worker on
    another machine (here: another process with its own temp dir and working directory) fetches and scores."""
    import os
    import subprocess
    import sys

    constitution = load_constitution()
    resolved = registry.resolve(load_config(), champion_lake.state_dir)
    spec = scorers.scorer_spec(constitution, resolved.classify, registry.champions_for(constitution, resolved))
    entry = next(p for p in json.loads(spec)["principles"] if p["name"] == "toxicity")
    assert entry["model_uri"] == "models:/curate_toxicity/1"
    store = (champion_lake.state_dir / "mlartifacts").resolve().as_uri()
    assert entry["artifact_uri"].startswith(store + "/"), entry  # in the lake's artifact store
    assert "model_path" not in entry and "curate-models" not in spec

    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    code = (
        "import json, sys; from pipelines.judgement import scorers as classify; "
        "s = classify.load_scorer(sys.stdin.read()); "
        "i = s.names.index('toxicity'); "
        "print(json.dumps([float(x) for x in s.score(['The mayor is a worthless idiot.', "
        "'The mayor opened the library.'])[:, i]]))"
    )
    env = {**os.environ, "TMPDIR": str(worker_tmp), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], input=spec, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    toxic, plain = json.loads(done.stdout.strip().splitlines()[-1])
    assert toxic > 0.5 > plain
    fetched = list((worker_tmp / "curate-models" / "by-uri").glob("*/MLmodel"))
    assert len(fetched) == 1  # the worker's own copy, fetched by URI
