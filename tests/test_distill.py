"""Distillation on a tiny labelled set with a known separable signal: metrics, registry, the alias rule; class
balancing and probability calibration of the heads on constructed data (no shared data, seconds)."""

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

from pipelines.core.config import RunConfig, load_config
from pipelines.core.constitution import load_constitution
from pipelines.judgement.distill import (
    C_GRID,
    DistillError,
    beats,
    brier_score,
    calibrate_head,
    choose_c,
    choose_threshold,
    describe,
    distill,
    expected_calibration_error,
    fit_head,
    fit_logistic,
    split_of,
)
from pipelines.judgement.label import import_human_labels
from udfs.heads import Calibration, EncoderHead, LinearHead, fit_calibration, load_head, save_head

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


#: `distill.c` for the tests about something else than the choice of C: the validation search over C_GRID costs seven
#: extra logistic fits (~25 s on 2 cores per distillation); test_distill_registers_and_moves_champion_only_when_better
#: and test_label's `curate distill` run it, test_regularisation_is_chosen_by_validation_auc checks what it chooses.
FIXED_C = 0.01


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
    c, aucs = choose_c(xt, yt, xv, yv, balance=True)
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
    # A model with two hash buckets cannot see the signal. There is no champion, but it does not become one: on the
    # held-out human labels the scorer a fresh lake uses (the packaged teacher) is better - never move back.
    weak = distill(labelled_lake, toxicity, _cfg(n_features=2), kind="linear")
    assert not weak.champion and weak.version == "1" and weak.previous_champion is None
    assert weak.metrics["roc_auc"] < 0.8
    assert weak.reference["reference"] == "human" and not weak.reference["passed"]
    assert weak.reference["new_roc_auc"] < weak.reference["incumbent_roc_auc"]

    good = distill(labelled_lake, toxicity, _cfg(), kind="linear")
    assert good.metrics["roc_auc"] >= 0.95 and good.metrics["f1"] >= 0.85 and good.metrics["spearman"] > 0.7
    assert good.champion and good.previous_champion is None and good.reference["passed"]
    assert good.label_counts["labeler:human:synthetic"] == 192
    assert "; labels from human:synthetic (192)" in describe(good)  # says which teachers it learned from

    # ties do not move the alias: the same labels and the C the search chose for `good` (its search is not redone:
    # seven more fits, ~25 s on 2 cores) give the same model
    chosen_c = float(mlflow.get_run(good.mlflow_run_id).data.params["c"])
    same = distill(labelled_lake, toxicity, _cfg(c=chosen_c), kind="linear")
    assert not same.champion and same.version == "3" and same.previous_champion == "2"
    assert same.previous_metrics is not None
    assert same.previous_metrics["roc_auc"] == pytest.approx(good.metrics["roc_auc"])  # the same test split

    # registry round trip: the champion loads as a pyfunc with a signature, scores text in [0, 1]
    model = mlflow.pyfunc.load_model("models:/curate_toxicity@champion")
    assert model.metadata.signature.inputs.input_names() == ["text"]
    out = model.predict(pd.DataFrame({"text": ["The mayor is a worthless idiot.", "The mayor opened the library."]}))
    assert list(out.columns) == ["score"] and 0 <= out["score"][1] < 0.5 < out["score"][0] <= 1


def test_encoder_kind_learns_the_signal(labelled_lake: Any) -> None:
    import mlflow

    result = distill(labelled_lake, load_constitution().get("toxicity"), _cfg(calibrate="platt"), kind="encoder")
    assert result.metrics["roc_auc"] >= 0.95 and result.metrics["f1"] >= 0.85
    assert result.model_uri is not None and result.model_uri.startswith("models:/curate_toxicity/")
    # calibration quality before and after, on the test split, in the result and in MLflow
    m = result.metrics
    assert {"brier", "ece", "brier_raw", "ece_raw"} <= set(m) and all(0 <= m[k] <= 1 for k in ("brier", "ece"))
    logged = mlflow.get_run(result.mlflow_run_id).data
    assert {"test_brier", "test_ece", "test_brier_raw", "test_ece_raw"} <= set(logged.metrics)
    assert logged.params["calibrate"] == "platt" and logged.params["calibration"] in ("platt", "none")
    # the registered model applies the calibration it was saved with
    head = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model().head
    assert head.calibration is None or head.calibration.method == "platt"


def test_unknown_calibration_is_a_clear_error(labelled_lake: Any) -> None:
    with pytest.raises(DistillError, match=r"distill\.calibrate must be one of"):
        distill(labelled_lake, load_constitution().get("toxicity"), _cfg(calibrate="beta"), kind="linear")


def _imbalanced(n: int, rng: np.random.Generator, share: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes in 5 dimensions, `share` positives."""
    y = (rng.random(n) < share).astype(int)
    x = rng.normal(size=(n, 5))
    x[:, 0] += 1.5 * y
    return x, y


def test_balancing_raises_minority_recall_at_one_half() -> None:
    rng = np.random.default_rng(0)
    (xt, yt), (xv, yv) = _imbalanced(4000, rng), _imbalanced(4000, rng)
    recall = {}
    for balance in (False, True):
        coef, intercept, _, _ = fit_logistic(xt, yt, None, 1.0, balance)
        scores = 1 / (1 + np.exp(-(xv @ coef + intercept)))
        recall[balance] = float((scores[yv == 1] >= 0.5).mean())
    # unweighted, the 5% class barely reaches 0.5; weighted, the boundary moves to the middle of the classes
    assert recall[False] < 0.2 and recall[True] > 0.6


def test_balance_setting_reaches_the_linear_kind() -> None:
    rows = _labelled_rows()
    pos = [r["text"] for r in rows if r["label"]][:8]  # 8 insults among 96 facts
    neg = [r["text"] for r in rows if not r["label"]]
    texts, y = pos + neg, np.array([1] * len(pos) + [0] * len(neg))
    mean_pos = {}
    for balance in (False, True):
        head, _, _ = fit_head("linear", texts, y, _cfg(balance=balance, c=0.1, n_features=2**12))
        mean_pos[balance] = float(head.predict_raw(pos).mean())
    assert mean_pos[False] < 0.5 < mean_pos[True]


def _miscalibrated(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores that are overconfident and shifted: the truth is sigmoid(z), the head says sigmoid(3z + 1.5)."""
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 1 / (1 + np.exp(-(3 * z + 1.5))), y


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_ece_on_held_out_scores(method: str) -> None:
    rng = np.random.default_rng(1)
    (val_raw, val_y), (test_raw, test_y) = _miscalibrated(3000, rng), _miscalibrated(3000, rng)
    cal = fit_calibration(val_raw, val_y, method)
    assert cal is not None and cal.method == method
    before = expected_calibration_error(test_raw, test_y)
    after = expected_calibration_error(cal.apply(test_raw), test_y)
    assert before > 0.1 and after < 0.03 and after < before / 4
    assert brier_score(cal.apply(test_raw), test_y) < brier_score(test_raw, test_y)
    # what distill does: the head keeps its raw scores and serves the calibrated ones
    head = LinearHead(n_features=4, coef=np.zeros(8, np.float32))
    info = calibrate_head(head, val_raw, val_y, method)
    assert info["calibration"] == method and info["calibration_n"] == 3000
    assert np.allclose(head.calibrated(test_raw), cal.apply(test_raw))


def test_calibration_has_nothing_to_fit_on_one_class_or_none() -> None:
    raw = np.linspace(0.1, 0.9, 20)
    assert fit_calibration(raw, np.zeros(20, dtype=int), "platt") is None
    assert fit_calibration(raw, (raw > 0.5).astype(int), "none") is None
    assert fit_calibration(raw, (raw < 0.5).astype(int), "platt") is None  # would reverse the ranking
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibration(raw, (raw > 0.5).astype(int), "beta")


def test_ece_by_hand() -> None:
    scores = np.array([0.05, 0.15, 0.95, 0.95])
    y = np.array([0, 1, 1, 0])
    # bins [0,.1): |0 - .05|, [.1,.2): |1 - .15|, [.9,1]: |1 - 1.9| -> (0.05 + 0.85 + 0.9) / 4
    assert expected_calibration_error(scores, y) == pytest.approx(0.45)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_round_trips_through_save_load_and_the_pyfunc(method: str, tmp_path: Path) -> None:
    import mlflow

    import udfs.heads as heads_module

    rows = _labelled_rows()
    texts, y = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    head = LinearHead(n_features=2**12).fit(texts[::2], y[::2], c=0.3)
    calibrate_head(head, head.predict_raw(texts[1::2]), y[1::2], method)
    assert head.calibration is not None
    probe = ["The mayor is a worthless idiot.", "The mayor opened the library.", "Your brother explained it, honestly."]
    expected = head.predict(probe)
    assert not np.allclose(expected, head.predict_raw(probe))  # the calibration does something here

    loaded = load_head(save_head(head, tmp_path / "head"))
    assert loaded.calibration is not None and loaded.calibration.method == method
    assert np.allclose(loaded.predict(probe), expected, atol=1e-6)
    assert np.allclose(loaded.predict_raw(probe), head.predict_raw(probe), atol=1e-6)

    model_dir = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(
        str(model_dir),
        python_model=str(Path(heads_module.__file__).with_name("head_model.py")),
        artifacts={"head": str(tmp_path / "head")},
    )
    out = mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame({"text": probe}))
    assert np.allclose(out["score"].to_numpy(), expected, atol=1e-6)


def test_encoder_head_calibration_round_trips_on_embeddings(tmp_path: Path) -> None:
    """The scoring UDF calls `predict_embeddings` (one shared encoding): it must serve calibrated scores too."""
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(50, 384)).astype(np.float32)
    cal = Calibration("isotonic", x=np.array([0.0, 0.5, 1.0]), y=np.array([0.0, 0.2, 0.9]))
    head = EncoderHead(coef=rng.normal(size=384).astype(np.float32), intercept=0.3, calibration=cal)
    loaded = load_head(save_head(head, tmp_path / "enc"))
    assert isinstance(loaded, EncoderHead) and loaded.calibration is not None
    assert np.allclose(loaded.predict_embeddings(emb), head.predict_embeddings(emb))
    assert np.allclose(head.predict_embeddings(emb), cal.apply(head.predict_embeddings_raw(emb)))


def test_format_1_heads_still_load_uncalibrated(tmp_path: Path) -> None:
    head = LinearHead(n_features=8, coef=np.ones(16, np.float32), intercept=-0.5)
    d = save_head(head, tmp_path / "old")
    meta = json.loads((d / "head.json").read_text())
    meta["format"] = 1
    del meta["calibration"]
    (d / "head.json").write_text(json.dumps(meta))
    loaded = load_head(d)
    assert loaded.calibration is None and np.allclose(loaded.predict(["a b"]), head.predict(["a b"]))


class _OldRunLabeler:
    """A labeler the constitution does not name (as labels an old LLM run left in the lake): it calls every fact
    toxic and every insult clean, so a model that learns from it inverts the signal."""

    name = "llm:old-run"

    def prompt_version(self, principle: Any) -> str:
        return "old-run-v1"

    def label(self, principle: Any, texts: Any, progress: Any = None) -> list[Any]:
        from udfs.label_types import LabelResult

        return [LabelResult(status="ok", score=0.0 if any(i in t for i in INSULTS) else 1.0) for t in texts]

    def close(self) -> None:
        pass


def _old_run_labels(lake: Any, principle: str) -> int:
    """Labels of `_OldRunLabeler` on the texts of `_labelled_rows` with other endings (other documents)."""
    from pipelines.judgement.label import label_documents

    rows = [r["text"].rstrip(".") + " - so they say." for r in _labelled_rows()]
    docs = [{"doc_id": f"old{i}", "text": t} for i, t in enumerate(rows)]
    label_documents(lake, load_constitution().get(principle), _OldRunLabeler(), docs, chunk_size=len(docs))
    return len(docs)


def test_distill_learns_only_from_the_labelers_named_for_the_principle(labelled_lake: Any) -> None:
    import mlflow

    toxicity = load_constitution().get("toxicity")
    n_old = _old_run_labels(labelled_lake, "toxicity")
    # a fixed C (FIXED_C): which labels it learns from is the point here, not the search
    result = distill(labelled_lake, toxicity, _cfg(c=FIXED_C), kind="linear")
    # named for toxicity: its teacher (stack), human imports, iterate.labeler (exemplar); not the old run's labels
    assert "labeler:llm:old-run" not in result.label_counts
    assert result.labelers == ["human:synthetic"] and result.ignored == {"llm:old-run": n_old}
    assert result.metrics["roc_auc"] >= 0.95  # learnt the human signal, not the inverted one
    params = mlflow.get_run(result.mlflow_run_id).data.params
    assert params["labelers"] == "human:synthetic" and params["labelers_ignored"] == f"llm:old-run ({n_old})"
    assert {"stack (teacher stack:toxic)", "human:* (human labels)"} <= set(params["label_sources"].split(", "))
    assert f"ignored llm:old-run ({n_old}): not named for toxicity" in describe(result)


def test_labels_only_from_unnamed_labelers_is_a_clear_error(lake: Any) -> None:
    _old_run_labels(lake, "violence")
    named = r"no labels from the labelers named for it .*llm:old-run \(192\).*distill\.labelers"
    with pytest.raises(DistillError, match=named):
        distill(lake, load_constitution().get("violence"), _cfg(), kind="linear")
    # chosen explicitly, they are what distill learns from
    chosen = distill(lake, load_constitution().get("violence"), _cfg(labelers="llm:old-run", c=FIXED_C), kind="linear")
    assert chosen.labelers == ["llm:old-run"] and chosen.label_counts["labeler:llm:old-run"] == 192


def test_label_sources_name_the_teacher_human_imports_iterate_and_the_judge() -> None:
    from pipelines.judgement.distill import label_sources
    from udfs.encoder import ENCODER_NAME

    c = load_constitution()
    assert set(label_sources(c.get("toxicity"), _cfg()).names) == {"stack", "human:*", f"exemplar:{ENCODER_NAME}"}
    # no teacher; iteration relabels with human imports only; a judge that writes its labels
    judged = load_config(
        overrides={
            "iterate.labeler": "human:people",
            "classify.cascade.judge": "openai",
            "label.llm.model": "org/judge-7b",
        }
    )
    assert label_sources(c.get("deception"), judged).names == {
        "human:*": "human labels",
        "llm:judge-7b": "classify.cascade.judge",
    }
    quiet = load_config(overrides={"classify.cascade.judge": "openai", "classify.cascade.judge_writes_labels": False})
    assert "llm:judge-7b" not in label_sources(c.get("deception"), quiet).names
    assert label_sources(c.get("deception"), _cfg(labelers="human:*, llm:x")).names == {
        "human:*": "distill.labelers",
        "llm:x": "distill.labelers",
    }


def test_labeler_names_match_what_the_labelers_write() -> None:
    from pipelines.core.config import LabelConfig
    from udfs.labelers import LabelerContext, labeler_name, make_labeler
    from udfs.llm import LLMConfig

    cfg = LabelConfig(llm=LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="org/judge-7b"))
    ctx = LabelerContext(cfg, Path("/nonexistent"), Path("/nonexistent"))
    for kind in ("openai", "exemplar", "stack", "jigsaw"):
        labeler = make_labeler(kind, ctx)
        assert labeler_name(kind, cfg) == labeler.name, kind
        labeler.close()
    assert labeler_name("human:people", cfg) == "human:people"
    assert labeler_name("openai", LabelConfig()) is None  # no model: it cannot label


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
