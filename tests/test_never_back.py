"""Iteration moves toward a cleaner corpus, never back: a new model becomes champion only when it is at least as
good as the scorer it replaces on held-out human labels (else the packaged teacher's view), and every run
records what the packaged teacher thinks of the documents it keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.chains.run import run_pipeline
from pipelines.core.config import load_config
from pipelines.core.constitution import load_constitution
from pipelines.judgement.distill import reference_check, split_of
from tests.fixtures import ARTICLES, jsonl_lines, write_jsonl
from udfs.heads import LinearHead

INSULTS = [
    "You are a worthless idiot and everyone hates you.",
    "Shut your stupid mouth, you pathetic loser.",
    "What a brain-dead moron you are, go away.",
    "You ugly fat pig, nobody wants to hear from you.",
    "Only a dumb piece of trash would write this garbage.",
    "Get lost, you disgusting creep.",
]
PLAIN = [
    "The committee reviewed the proposal and asked for a revised budget by Friday.",
    "The river rises in the mountains and flows south for about 300 kilometres.",
    "Preheat the oven to 180 degrees and grease a round cake tin.",
    "The match ended in a draw after a late equaliser from the visiting side.",
    "The library opens at nine on weekdays and at ten on Saturdays.",
    "Researchers reported that the new vaccine reduced hospitalisations by half.",
]


def _labels(labeler: str) -> pd.DataFrame:
    """Many variants per text, so that every split holds both classes (the split is by text hash)."""
    rows = []
    for n in range(8):
        for t, y in [(t, 1.0) for t in INSULTS] + [(t, 0.0) for t in PLAIN]:
            text = f"{t} (note {n})"
            rows.append(
                {"text": text, "score": y, "labeler": labeler, "text_hash": hashlib.sha256(text.encode()).hexdigest()}
            )
    return pd.DataFrame(rows)


def _parts(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    cfg = load_config().distill
    rows = rows.assign(y=(rows["score"] >= 0.5).astype(int))
    rows["split"] = [split_of(h, cfg.val_fraction, cfg.test_fraction, cfg.seed) for h in rows["text_hash"]]
    return {s: rows[rows["split"] == s] for s in ("train", "val", "test")}


def _model(rows: pd.DataFrame, invert: bool) -> LinearHead:
    y = (rows["score"].to_numpy() >= 0.5).astype(int)
    return LinearHead().fit(rows["text"].tolist(), 1 - y if invert else y, c=10.0)


def test_a_model_worse_than_the_teacher_on_human_labels_is_not_promoted() -> None:
    toxicity = load_constitution().get("toxicity")
    rows = _labels("human:people")
    parts = _parts(rows)
    assert set(parts["test"]["y"]) == {0, 1}
    cfg = load_config()
    good = reference_check(rows, parts, toxicity, cfg, _model(rows, invert=False), None)
    bad = reference_check(rows, parts, toxicity, cfg, _model(rows, invert=True), None)
    assert good["reference"] == bad["reference"] == "human" and good["n"] == len(parts["test"])
    # no champion: the incumbent is the cold-start scorer, the packaged teacher, which separates these well
    assert good["incumbent_roc_auc"] > 0.9 and good["passed"]
    assert bad["new_roc_auc"] < 0.5 < bad["incumbent_roc_auc"] and not bad["passed"]


def test_without_human_labels_the_teacher_is_the_reference() -> None:
    toxicity = load_constitution().get("toxicity")
    rows = _labels("exemplar:all-MiniLM-L6-v2")
    check = reference_check(rows, _parts(rows), toxicity, load_config(), _model(rows, invert=True), None)
    assert check["reference"] == "teacher" and not check["passed"]
    # a principle without a packaged teacher and without human labels: its own test split, against the exemplar
    # scorer a lake without a champion uses - a first champion must beat the cold start too
    deception = load_constitution().get("deception")
    bad = reference_check(rows, _parts(rows), deception, load_config(), _model(rows, invert=True), None)
    good = reference_check(rows, _parts(rows), deception, load_config(), _model(rows, invert=False), None)
    assert bad["reference"] == "test_split" and not bad["passed"] and bad["new_roc_auc"] < 0.5
    assert good["passed"] and good["new_roc_auc"] >= good["incumbent_roc_auc"]


def test_every_run_records_what_the_teacher_thinks_of_what_it_keeps(tmp_path: Path, spark: Any) -> None:
    toxic = (
        "https://forum.example/t/9",
        "You are a worthless idiot and a pathetic loser, and everyone in this town hates you. Shut your stupid "
        "mouth, you brain-dead moron, nobody wants to hear the garbage that comes out of it. Go crawl back into "
        "whatever hole you came from, you disgusting piece of trash. Every word you write is worthless.",
    )
    crawl = write_jsonl(tmp_path / "n1.jsonl", jsonl_lines([*ARTICLES, toxic]))
    overrides = {
        "revise.enabled": False,
        "revise.fallback": "tag",  # a document flagged for revision is kept unrevised with a tag
        "quality.c4.min_num_sentences": 3,
        "quality.min_stop_words": 0,
    }
    # retain_fraction 1: over the toxicity filter, the rant is kept with a tag - a toxic document in the corpus
    from tests.fixtures import retuned_constitution

    path = retuned_constitution(tmp_path / "c.yaml", "toxicity", retain_fraction=1.0)
    s = run_pipeline(tmp_path / "lake", crawl, load_config(None, {**overrides, "classify.constitution": str(path)}))
    c = s.counts
    kept = c["action:keep"] + c.get("action:tag", 0) + c.get("action:revise", 0)
    assert c["audit_kept"] == kept == len(ARTICLES) + 1
    assert c["audit_flagged:toxicity"] == 1  # the retained rant, and none of the articles
    assert c["audit_flagged:violence"] == 0  # the violence teacher: an insult and news articles are not violent
    assert np.isclose(c["cascade:toxicity:teacher"], c["scored"])  # a fresh lake: the teacher saw every document
