"""Distillation on a tiny labelled set with a known separable signal: metrics, registry, the alias rule."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import RunConfig, load_config
from pipelines.constitution import load_constitution
from pipelines.distill import C_GRID, DistillError, beats, choose_c, choose_threshold, distill, split_of
from pipelines.label import import_human_labels

INSULTS = ["is a worthless idiot", "is a pathetic moron", "should shut his stupid mouth", "is a disgusting loser"]
SUBJECTS = ["Your brother", "That referee", "The new manager", "This commenter", "Our neighbour", "The mayor"]
ENDINGS = ["", " and everyone knows it.", ", honestly.", " and always was."]
FACTS = [
    "opened the library at nine",
    "reported higher quarterly revenue",
    "planted tomatoes in the garden",
    "explained the new bus timetable",
]


def _labelled_rows() -> list[dict[str, Any]]:
    rows = []
    for s, e in itertools.product(SUBJECTS, ENDINGS):
        for i in INSULTS:
            rows.append({"text": f"{s} {i}{e}", "label": 1})
        for f in FACTS:
            rows.append({"text": f"{s} {f}{e}", "label": 0})
    return rows  # 96 positives, 96 negatives


@pytest.fixture()
def labelled_lake(lake: Any, tmp_path: Path) -> Any:
    path = tmp_path / "human.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _labelled_rows()))
    import_human_labels(lake, "toxicity", "human:synthetic", path)
    return lake


def _cfg(**distill: Any) -> RunConfig:
    cfg = load_config(overrides={"tracking.experiment": "distill-test"})
    return dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, **distill))


def test_split_is_by_document_and_stable() -> None:
    keys = [f"doc{i}" for i in range(2000)]
    splits = [split_of(k, 0.15, 0.2) for k in keys]
    assert splits == [split_of(k, 0.15, 0.2) for k in keys]
    share = splits.count("test") / len(keys)
    assert 0.17 < share < 0.23


def test_threshold_maximises_f1() -> None:
    scores = np.array([0.9, 0.8, 0.6, 0.4, 0.3])
    y = np.array([1, 1, 0, 1, 0])
    assert choose_threshold(scores, y) == 0.4  # F1 6/7: predict the top four


def test_regularisation_is_chosen_by_validation_auc() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    # One informative dimension among 200 noise dimensions, 60 training rows: weak regularisation fits the noise.
    rng = np.random.default_rng(3)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 201))
        x[:, 0] += 0.8 * (2 * y - 1)
        return x, y

    (xt, yt), (xv, yv) = data(60), data(2000)
    expected = {}
    for c in C_GRID:  # the reference: sklearn's own balanced logistic regression, scored on validation
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(xt, yt)
        expected[str(c)] = roc_auc_score(yv, clf.decision_function(xv))
    c, aucs = choose_c(xt, yt, xv, yv)
    assert aucs == pytest.approx(expected, abs=1e-6)
    assert aucs[str(c)] == max(expected.values())
    assert expected[str(c)] > expected[str(max(C_GRID))] + 0.02  # the grid matters on this data
    assert choose_c(xt, yt, xv[:5], np.ones(5, dtype=int)) == (1.0, {})  # a one-class validation split cannot rank


def test_alias_rule() -> None:
    assert beats({"roc_auc": 0.8}, None)
    assert beats({"roc_auc": 0.81}, {"roc_auc": 0.8})
    assert not beats({"roc_auc": 0.8}, {"roc_auc": 0.8})
    assert not beats({"roc_auc": 0.7}, {"roc_auc": 0.8})
    assert beats({"spearman": 0.5}, {"spearman": 0.4})


def test_distill_registers_and_moves_champion_only_when_better(labelled_lake: Any) -> None:
    import mlflow

    toxicity = load_constitution().get("toxicity")
    # A model with two hash buckets cannot see the signal; it becomes champion only because there is none.
    weak = distill(labelled_lake, toxicity, _cfg(n_features=2), kind="linear")
    assert weak.champion and weak.version == "1" and weak.previous_champion is None
    assert weak.metrics["roc_auc"] < 0.8

    good = distill(labelled_lake, toxicity, _cfg(), kind="linear")
    assert good.metrics["roc_auc"] >= 0.95 and good.metrics["f1"] >= 0.85 and good.metrics["spearman"] > 0.7
    assert good.champion and good.previous_champion == "1" and good.previous_metrics is not None
    assert good.previous_metrics["roc_auc"] == pytest.approx(weak.metrics["roc_auc"])  # the same test split
    assert good.label_counts["labeler:human:synthetic"] == 192

    same = distill(labelled_lake, toxicity, _cfg(), kind="linear")  # ties do not move the alias
    assert not same.champion and same.version == "3" and same.previous_champion == "2"

    # registry round trip: the champion loads as a pyfunc with a signature, scores text in [0, 1]
    model = mlflow.pyfunc.load_model("models:/curate_toxicity@champion")
    assert model.metadata.signature.inputs.input_names() == ["text"]
    out = model.predict(pd.DataFrame({"text": ["The mayor is a worthless idiot.", "The mayor opened the library."]}))
    assert list(out.columns) == ["score"] and 0 <= out["score"][1] < 0.5 < out["score"][0] <= 1


def test_encoder_kind_learns_the_signal(labelled_lake: Any) -> None:
    result = distill(labelled_lake, load_constitution().get("toxicity"), _cfg(), kind="encoder")
    assert result.metrics["roc_auc"] >= 0.95 and result.metrics["f1"] >= 0.85
    assert result.model_uri is not None and result.model_uri.startswith("models:/curate_toxicity/")


def test_too_few_labels_is_a_clear_error(lake: Any, tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text(json.dumps({"text": "a", "label": 1}) + "\n")
    import_human_labels(lake, "violence", "human:few", path)
    with pytest.raises(DistillError, match="need at least"):
        distill(lake, load_constitution().get("violence"), _cfg(), kind="linear")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CURATE_TEST_FINETUNE"),
    reason="fine-tuning MiniLM on CPU takes 30-90 s on 2 cores; set CURATE_TEST_FINETUNE=1 to run it",
)
def test_finetune_kind_trains_end_to_end_and_round_trips(labelled_lake: Any) -> None:
    import mlflow

    result = distill(labelled_lake, load_constitution().get("toxicity"), _cfg(epochs=1), kind="finetune")
    assert result.metrics["roc_auc"] >= 0.95 and result.champion
    model = mlflow.pyfunc.load_model(f"{result.model_uri}")
    out = model.predict(pd.DataFrame({"text": ["The mayor is a worthless idiot.", "The mayor opened the library."]}))
    assert out["score"][0] > 0.5 > out["score"][1]
