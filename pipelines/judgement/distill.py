"""Distillation: train a small per-principle classifier on the teacher labels, evaluate it, register it.

- Labels come from `labels` (status `ok`) of the labelers named for the principle (`label_sources`): its packaged
  teacher, imported human labels (`human:*`), the labeler iteration relabels with (`iterate.labeler`) and the
  cascade's judge where it writes labels - or exactly those `distill.labelers` lists. Labels any other labeler
  wrote (an old exemplar run, a judge asked for them by `curate score --write-labels`) are not learnt from: they
  are counted as ignored, and when they are all there is, distillation says so and how to choose them. Labels of
  the same text (several doc_ids, several labelers) are averaged into one teacher score.
- The split is by document (a hash of the normalised text): duplicates never straddle train and test, and a
  document stays in its split when labels are added, so two models distilled at different times are
  compared on the test documents they share.
- A document is a positive when its teacher score is >= the principle's `label_threshold`. The heads'
  regularisation (`distill.c`, unset by default) is chosen from `C_GRID` by validation ROC-AUC for the
  encoder and linear kinds (features computed once, so the search costs a few logistic fits); the decision
  threshold is the one that maximises F1 on the validation split; the test split reports ROC-AUC, F1 at
  that threshold and Spearman correlation with the teacher's scores.
- Teacher labels are usually imbalanced: `distill.balance` weights the classes equally in the logistic fit
  (encoder, linear; and the finetune loss). The scores are then compared with fixed thresholds (revise 0.7,
  filter 0.9) as if they were probabilities, which a weighted or ranking-tuned fit does not give, so
  `distill.calibrate` (platt | isotonic | none) fits a monotone map on the validation split after the head is
  trained; it is saved inside the head and applied wherever the head scores. The test split reports the Brier
  score and the expected calibration error (10 equal-width bins) of the calibrated scores (`test_brier`,
  `test_ece`) and of the raw ones (`test_brier_raw`, `test_ece_raw`). Defaults and their measurement:
  bench/distill_compare.py, bench/README.md.
- Everything goes to MLflow (params, metrics, training label counts, a calibration plot); the model is
  registered as a pyfunc with a signature under `<model_prefix>_<principle>`, and the alias `champion`
  moves to it only when it beats the current champion's ROC-AUC on this run's test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.core import registry
from pipelines.core.config import RunConfig
from pipelines.core.registry import CHAMPION, current_champion, model_name

if TYPE_CHECKING:
    from pipelines.core.lake import Lake

logger = logging.getLogger(__name__)

#: Inverse L2 strengths tried when `distill.c` is unset: noisy crowd labels want strong regularisation, clean
#: LLM labels on a few hundred documents want little; one fixed value served neither.
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


class DistillError(ValueError):
    """Not enough (or unusable) labels to distil from: the message says what to label."""


@dataclass(frozen=True)
class LabelSources:
    """The labelers a principle's distillation learns from: `names` (a name ending in `*` is a prefix), each with
    why it is named (`teacher ...`, `human labels`, `iterate.labeler`, `distill.labelers`, ...)."""

    names: dict[str, str]

    def matches(self, labeler: str) -> bool:
        return any(labeler.startswith(n[:-1]) if n.endswith("*") else labeler == n for n in self.names)

    def describe(self) -> str:
        return ", ".join(f"{n} ({why})" for n, why in self.names.items())


def label_sources(principle: Any, cfg: RunConfig) -> LabelSources:
    """`distill.labelers` when set; else the labelers the constitution and this config name as the principle's label
    sources: its packaged teacher (`stack:toxic` labels as `stack`), imported human labels, `iterate.labeler` (a
    round trains on what it just labelled) and the cascade's judge when it writes labels for the principle."""
    from udfs.labelers import labeler_name
    from udfs.teachers import check_teacher

    if cfg.distill.labelers:
        chosen = [s.strip() for s in cfg.distill.labelers.split(",") if s.strip()]
        return LabelSources(dict.fromkeys(chosen, "distill.labelers"))
    names: dict[str, str] = {}
    if principle.teacher:
        names[check_teacher(principle.teacher)[0]] = f"teacher {principle.teacher}"
    names["human:*"] = "human labels"
    j = cfg.classify.cascade
    judged = not principle.positive_kind and (not j.judge_principles or principle.name in j.judge_principles)
    more = [(cfg.iterate.labeler, "iterate.labeler")]
    if j.enabled and j.judge and j.judge_writes_labels and judged:
        more.append((j.judge, "classify.cascade.judge"))
    for kind, why in more:
        name = labeler_name(kind, cfg.label)
        if name is not None and not LabelSources(names).matches(name):
            names[name] = why
    return LabelSources(names)


def split_of(key: str, val_fraction: float, test_fraction: float, seed: int = 0) -> str:
    """train / val / test from a hash of the document key: stable as labels are added."""
    u = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(16**12)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def training_frame(labels: pd.DataFrame, threshold: float, cfg: Any) -> pd.DataFrame:
    """Labels (text_hash, text, score) -> one row per document: text, teacher score, y, split."""
    if labels.empty:
        raise DistillError("no labels: run `curate label` or `curate labels import` first")
    docs = labels.groupby("text_hash", as_index=False).agg(text=("text", "first"), teacher=("score", "mean"))
    docs = docs[docs["text"].notna()].reset_index(drop=True)
    docs["y"] = (docs["teacher"] >= threshold).astype(int)
    docs["split"] = [split_of(h, cfg.val_fraction, cfg.test_fraction, cfg.seed) for h in docs["text_hash"]]
    return docs


def choose_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The score threshold that maximises F1 on (validation) data; 0.5 when it holds a single class."""
    if len(scores) == 0 or y.min() == y.max():
        return 0.5
    order = np.argsort(-scores)
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    fp = np.cumsum(1 - t)
    f1 = 2 * tp / (tp + fp + t.sum())
    # only cut where the score changes
    last = np.r_[s[1:] != s[:-1], True]
    best = int(np.argmax(np.where(last, f1, -1)))
    return float(s[best])


def expected_calibration_error(scores: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: over `bins` equal-width score bins, the document-weighted mean |share of positives - mean score|.
    0 means a score of 0.7 is right 70% of the time, which is what the fixed revise/filter thresholds assume."""
    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.clip((scores * bins).astype(int), 0, bins - 1)  # [0, 0.1), ..., [0.9, 1.0]
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, weights=y, minlength=bins) - np.bincount(idx, weights=scores, minlength=bins))
    return float(gap.sum() / count.sum())


def brier_score(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of the score as a probability of the positive label."""
    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.mean((scores - y) ** 2)) if len(y) else float("nan")


def evaluate(scores: np.ndarray, teacher: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    pred = (scores >= threshold).astype(int)
    out = {
        "n": float(len(y)),
        "positives": float(y.sum()),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "threshold": float(threshold),
        "brier": brier_score(scores, y),
        "ece": expected_calibration_error(scores, y),
    }
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, scores))
    if len(y) > 2 and np.std(teacher) > 0 and np.std(scores) > 0:
        out["spearman"] = float(spearmanr(scores, teacher).statistic)
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def reference_check(
    rows: pd.DataFrame, parts: dict[str, pd.DataFrame], principle: Any, cfg: RunConfig, new: Any, old: Any
) -> dict[str, Any]:
    """Never move back: the model that would become champion must be at least as good as the scorer it replaces,
    judged on labels that are not its teacher's word alone.

    The reference is the held-out (test-split) human labels of the principle (`human:*` labelers) when there are
    any; else, for a principle with a packaged teacher, the teacher's view of the test split; else the test split
    itself. The incumbent is the current champion, or the scorer a lake without one uses (the cascade's teacher
    where the principle has one, the exemplar scorer otherwise): a first champion must beat the cold start too.
    With one class only in the reference nothing can be judged: passes.
    """
    from pipelines.judgement.teachers import TeacherScorer

    teacher_on = bool(principle.teacher) and not principle.positive_kind and cfg.classify.cascade.enabled
    teacher: np.ndarray | None = None  # the teacher's scores of the reference texts, when it is consulted
    human = rows[rows["labeler"].str.startswith("human:")]
    if not human.empty:
        ref = training_frame(human, principle.label_threshold, cfg.distill)
        ref = ref[ref["split"] == "test"]
        texts, y, source = ref["text"].tolist(), ref["y"].to_numpy(), "human"
    elif teacher_on:
        texts = parts["test"]["text"].tolist()
        teacher = TeacherScorer([principle.teacher]).score(texts)[:, 0]
        y, source = (teacher >= principle.label_threshold).astype(int), "teacher"
    else:
        # the labels it learnt from, held out: a student that cannot match the scorer it would replace on them
        # (the exemplar scorer, when its own labels are exemplar labels) would only move the corpus around
        texts, y, source = parts["test"]["text"].tolist(), parts["test"]["y"].to_numpy(), "test_split"
    if not texts:
        return {"reference": source, "passed": True, "n": 0}
    if old is not None:
        incumbent = np.asarray(old.predict(pd.DataFrame({"text": texts}))["score"], dtype=float)
    elif teacher_on:
        incumbent = teacher if teacher is not None else TeacherScorer([principle.teacher]).score(texts)[:, 0]
    else:
        from pipelines.core.constitution import Constitution
        from pipelines.judgement.scorers import load_scorer, scorer_spec

        only = Constitution(version=1, principles=(principle,), source="reference")
        incumbent = load_scorer(scorer_spec(only, cfg.classify)).score(texts)[:, 0]
    new_auc, old_auc = _auc(y, new.predict(texts)), _auc(y, incumbent)
    passed = new_auc is None or old_auc is None or new_auc >= old_auc
    return {
        "reference": source,
        "n": len(texts),
        "new_roc_auc": new_auc,
        "incumbent_roc_auc": old_auc,
        "passed": passed,
    }


def beats(new: dict[str, float], old: dict[str, float] | None) -> bool:
    """The alias rule: no champion yet, or a strictly better test ROC-AUC (Spearman when AUC is undefined)."""
    if old is None:
        return True
    for key in ("roc_auc", "spearman"):
        if key in new and key in old:
            return new[key] > old[key]
    return False


def choose_c(
    train_x: Any, train_y: np.ndarray, val_x: Any, val_y: np.ndarray, balance: bool = False
) -> tuple[float, dict[str, float]]:
    """The `C_GRID` value with the best validation ROC-AUC (ties: the stronger regularisation), and every
    value's AUC. 1.0 when the validation split cannot rank (empty or one class)."""
    from sklearn.metrics import roc_auc_score

    from udfs.heads import fit_logistic_regression, sigmoid

    if len(val_y) == 0 or val_y.min() == val_y.max():
        return 1.0, {}
    aucs: dict[str, float] = {}
    for c in C_GRID:
        coef, intercept = fit_logistic_regression(train_x, train_y, c, balance)
        aucs[str(c)] = float(roc_auc_score(val_y, sigmoid(val_x @ coef + intercept)))
    best = max(C_GRID, key=lambda c: (aucs[str(c)], -c))
    return best, aucs


def fit_logistic(
    train_x: Any,
    train_y: np.ndarray,
    val: tuple[Any, np.ndarray] | None,
    c: float | None,
    balance: bool,
) -> tuple[np.ndarray, float, float, dict[str, float]]:
    """(coef, intercept, C used, validation AUC per C tried) of the logistic head on precomputed features: `c`,
    or the `C_GRID` search on `val` when `c` is None. Shared by `fit_head` and bench/distill_compare.py, which
    fits many variants on one encoding."""
    from udfs.heads import fit_logistic_regression

    chosen, aucs = choose_c(train_x, train_y, val[0], val[1], balance) if c is None and val else (c or 1.0, {})
    coef, intercept = fit_logistic_regression(train_x, train_y, chosen, balance)
    return coef, intercept, chosen, aucs


def fit_head(
    kind: str, texts: list[str], y: np.ndarray, cfg: RunConfig, val: tuple[list[str], np.ndarray] | None = None
) -> tuple[Any, float, dict[str, float]]:
    """(trained head, the C it used, validation AUC per C tried). `val` is searched when `distill.c` is unset.
    The head comes back uncalibrated: `calibrate_head` fits its calibration on the validation split."""
    from udfs.heads import EncoderHead, FinetuneHead, LinearHead

    fixed, balance = cfg.distill.c, cfg.distill.balance
    if kind == "linear":
        head = LinearHead(n_features=min(cfg.distill.n_features, 2**22))
        x = head.features(texts)
        vx = (head.features(val[0]), val[1]) if val is not None else None
        head.coef, head.intercept, c, aucs = fit_logistic(x, y, vx, fixed, balance)
        return head, c, aucs
    if kind == "encoder":
        k = cfg.classify
        enc = EncoderHead(max_tokens=k.max_tokens, batch_size=k.batch_size, device=k.device)
        emb = enc.embed(texts)
        ve = (enc.embed(val[0]), val[1]) if val is not None and fixed is None else None
        enc.coef, enc.intercept, c, aucs = fit_logistic(emb, y, ve, fixed, balance)
        return enc, c, aucs
    if kind == "finetune":
        k = cfg.classify
        head = FinetuneHead(
            max_tokens=k.max_tokens, batch_size=k.batch_size, device=k.device, epochs=cfg.distill.epochs
        )
        c = fixed or 1.0  # a grid would mean one fine-tuning per value
        return head.fit(texts, y, c=c, seed=cfg.distill.seed, balance=balance), c, {}
    raise DistillError(f"unknown model kind {kind!r} (have: encoder, finetune, linear)")


def calibrate_head(head: Any, val_raw: np.ndarray, val_y: np.ndarray, method: str) -> dict[str, Any]:
    """Fit `method` on the validation split's raw scores and attach it to `head` (None: stays uncalibrated);
    what was fitted, for MLflow. Fitted after the head and on documents it did not train on, so the map
    learns how the head's scores relate to the teacher's labels rather than to its own training set."""
    from udfs.heads import fit_calibration

    head.calibration = fit_calibration(val_raw, val_y, method)
    cal = head.calibration
    out: dict[str, Any] = {"calibration": cal.method if cal is not None else "none", "calibration_n": len(val_y)}
    if cal is not None and cal.method == "platt":
        out.update(calibration_a=cal.a, calibration_b=cal.b)
    if cal is not None and cal.method == "isotonic" and cal.x is not None:
        out["calibration_knots"] = len(cal.x)
    return out


@dataclass
class DistillResult:
    principle: str
    kind: str
    model_name: str
    version: str | None
    model_uri: str | None
    metrics: dict[str, float]
    label_counts: dict[str, int]
    champion: bool
    previous_champion: str | None = None
    previous_metrics: dict[str, float] | None = None
    reference: dict[str, Any] = field(default_factory=dict)  # reference_check: human or teacher labels
    mlflow_run_id: str | None = None
    splits: dict[str, int] = field(default_factory=dict)
    labelers: list[str] = field(default_factory=list)  # the labelers whose labels it learnt from
    ignored: dict[str, int] = field(default_factory=dict)  # labels of labelers not named for it, by labeler


def calibration_figure(scores: np.ndarray, y: np.ndarray, title: str, raw: np.ndarray | None = None) -> Any:
    """Reliability diagram of the test split (10 bins, n per point); `raw`: the uncalibrated scores beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    series = [(scores, "model (test split)")]
    if raw is not None:
        series = [(raw, "raw head (test split)"), (scores, "calibrated (test split)")]
    for values, label in series:
        idx = np.clip((values * 10).astype(int), 0, 9)
        xs, ys, ns = [], [], []
        for b in range(10):
            m = idx == b
            if m.any():
                xs.append(float(values[m].mean()))
                ys.append(float(y[m].mean()))
                ns.append(int(m.sum()))
        ax.plot(xs, ys, "o-", label=f"{label}, ECE {expected_calibration_error(values, y):.3f}")
        for x, yy, n in zip(xs, ys, ns, strict=True):
            ax.annotate(str(n), (x, yy), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel("predicted score")
    ax.set_ylabel("fraction of teacher positives")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _label_rows(lake: Lake, principle: Any, sources: LabelSources) -> tuple[pd.DataFrame, dict[str, int]]:
    """The principle's `ok` labels from `sources`, and the count of every other labeler's (ignored). Only labels
    of others: a DistillError that names them and says how to learn from them."""
    from pyspark.sql import functions as F

    df = lake.read("labels").where((F.col("principle") == principle.name) & (F.col("status") == "ok"))
    counts = {r["labeler"]: int(r["count"]) for r in df.groupBy("labeler").count().collect()}
    used = sorted(x for x in counts if sources.matches(x))
    ignored = {x: n for x, n in sorted(counts.items()) if x not in used}
    if not used and ignored:
        found = ", ".join(f"{x} ({n})" for x, n in ignored.items())
        raise DistillError(
            f"{principle.name}: no labels from the labelers named for it ({sources.describe()}); the lake has labels "
            f"from {found}. To learn from them set distill.labelers (`--labelers {','.join(ignored)}`, or "
            f"`--set distill.labelers=...`)"
        )
    rows = df.where(F.col("labeler").isin(used)) if used else df.limit(0)
    return rows.select("text_hash", "text", "score", "labeler").toPandas(), ignored


def distill(
    lake: Lake, principle: Any, cfg: RunConfig, kind: str | None = None, *, move_alias: bool = True
) -> DistillResult:
    """Train, evaluate, log and register one principle's classifier; move `champion` if it wins. With
    `move_alias=False` (iteration) a winner is only reported (`champion`): the caller moves the alias when the data
    it scored is published."""
    import mlflow
    from mlflow.models import infer_signature

    import udfs.heads as heads_module
    from pipelines.core.tracking import track
    from udfs.heads import CALIBRATIONS, save_head

    kind = kind or cfg.distill.kind
    if cfg.distill.calibrate not in CALIBRATIONS:
        raise DistillError(f"distill.calibrate must be one of {', '.join(CALIBRATIONS)}, got {cfg.distill.calibrate!r}")
    sources = label_sources(principle, cfg)
    rows, ignored = _label_rows(lake, principle, sources)
    used = sorted(rows["labeler"].unique()) if not rows.empty else []
    docs = training_frame(rows, principle.label_threshold, cfg.distill)
    if len(docs) < cfg.distill.min_labels:
        raise DistillError(f"{principle.name}: {len(docs)} labelled documents, need at least {cfg.distill.min_labels}")
    parts = {s: docs[docs["split"] == s] for s in ("train", "val", "test")}
    if parts["test"].empty or parts["train"]["y"].nunique() < 2:
        raise DistillError(f"{principle.name}: the train split needs both classes and the test split documents")
    label_counts = {f"labeler:{k}": int(v) for k, v in rows["labeler"].value_counts().items()}
    label_counts.update(
        {f"{s}_{c}": int((p["y"] == i).sum()) for s, p in parts.items() for i, c in ((0, "neg"), (1, "pos"))}
    )

    has_val = not parts["val"].empty
    val = parts["val"] if has_val else parts["train"]
    head, c, c_aucs = fit_head(
        kind,
        parts["train"]["text"].tolist(),
        parts["train"]["y"].to_numpy(),
        cfg,
        (val["text"].tolist(), val["y"].to_numpy()) if has_val else None,
    )
    val_y = val["y"].to_numpy()
    val_raw = head.predict_raw(val["text"].tolist())
    # no validation split: nothing held out to calibrate on (the training split would teach it the head's overfit)
    calibration = calibrate_head(head, val_raw, val_y, cfg.distill.calibrate if has_val else "none")
    threshold = choose_threshold(head.calibrated(val_raw), val_y)
    test_texts = parts["test"]["text"].tolist()
    test_y, test_teacher = parts["test"]["y"].to_numpy(), parts["test"]["teacher"].to_numpy()
    test_raw = head.predict_raw(test_texts)
    test_scores = head.calibrated(test_raw)
    metrics = evaluate(test_scores, test_teacher, test_y, threshold)
    metrics.update(brier_raw=brier_score(test_raw, test_y), ece_raw=expected_calibration_error(test_raw, test_y))

    cfg = registry.resolve(cfg, lake.state_dir)
    client = registry.client(cfg.classify.registry_uri or "")
    name = model_name(cfg.classify.model_prefix, principle.name)
    old = current_champion(client, name)
    old_metrics: dict[str, float] | None = None
    old_model = None
    if old is not None:
        old_model = mlflow.pyfunc.load_model(f"models:/{name}/{old.version}")
        old_scores = np.asarray(old_model.predict(pd.DataFrame({"text": test_texts}))["score"], dtype=float)
        old_threshold = float(old.tags.get("curate.threshold", 0.5))
        old_metrics = evaluate(old_scores, test_teacher, test_y, old_threshold)

    with track(lake.state_dir, cfg.tracking, run_name=f"distill:{principle.name}:{kind}") as tracker:
        tracker.params(
            {
                "principle": principle.name,
                "kind": kind,
                # the labelers it learnt from, those it could have (and why), and what it left out
                "labelers": ",".join(used),
                "label_sources": sources.describe(),
                "labelers_ignored": ",".join(f"{x} ({n})" for x, n in ignored.items()) or "none",
                "label_threshold": str(principle.label_threshold),
                "c": str(c),
                "c_chosen_on_validation": str(bool(c_aucs)),
                "balance": str(cfg.distill.balance),
                "calibrate": cfg.distill.calibrate,
                **{k: str(v) for k, v in calibration.items()},
                "seed": str(cfg.distill.seed),
                "val_fraction": str(cfg.distill.val_fraction),
                "test_fraction": str(cfg.distill.test_fraction),
                **{f"head.{k}": str(v) for k, v in head.settings().items()},
            }
        )
        tracker.metrics({f"test_{k}": v for k, v in metrics.items()})
        tracker.metrics({f"val_roc_auc_c_{k}": v for k, v in c_aucs.items()})
        tracker.metrics({f"labels_{k}": float(v) for k, v in label_counts.items()})
        if old_metrics is not None:
            tracker.metrics({f"champion_test_{k}": v for k, v in old_metrics.items()})
        tracker.dict(label_counts, "label_counts.json")
        tracker.figure(
            calibration_figure(
                test_scores,
                test_y,
                f"{name} ({kind}, {calibration['calibration']}) vs teacher, test split",
                raw=test_raw if head.calibration is not None else None,
            ),
            "calibration.png",
        )
        with tempfile.TemporaryDirectory() as tmp:
            head_dir = save_head(head, Path(tmp) / "head")
            example = pd.DataFrame({"text": test_texts[:2]})
            signature = infer_signature(example, pd.DataFrame({"score": test_scores[:2].astype(np.float64)}))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(heads_module.__file__).with_name("head_model.py")),
                artifacts={"head": str(head_dir)},
                signature=signature,
                registered_model_name=name,
                pip_requirements=["mlflow", "numpy", "pandas", "scikit-learn", "torch", "transformers"],
            )
        version = str(info.registered_model_version)
        client.set_model_version_tag(name, version, "curate.kind", kind)
        client.set_model_version_tag(name, version, "curate.threshold", str(threshold))
        client.set_model_version_tag(name, version, "curate.metrics", json.dumps(metrics))
        reference = reference_check(rows, parts, principle, cfg, head, old_model)
        tracker.metrics({f"reference_{k}": v for k, v in reference.items() if isinstance(v, float)})
        tracker.tags({"curate.reference": str(reference["reference"])})
        promoted = beats(metrics, old_metrics) and bool(reference["passed"])
        if promoted and move_alias:
            client.set_registered_model_alias(name, CHAMPION, version)
        tracker.tags({"curate.champion": str(promoted), "curate.model": f"models:/{name}/{version}"})
        run_id = tracker.run_id
    return DistillResult(
        principle=principle.name,
        kind=kind,
        model_name=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        metrics=metrics,
        label_counts=label_counts,
        champion=promoted,
        previous_champion=None if old is None else str(old.version),
        previous_metrics=old_metrics,
        reference=reference,
        mlflow_run_id=run_id,
        splits={s: len(p) for s, p in parts.items()},
        labelers=used,
        ignored=ignored,
    )


def describe(result: DistillResult) -> str:
    m = result.metrics
    parts = [f"{k} {m[k]:.3f}" for k in ("roc_auc", "f1", "spearman") if k in m]
    line = f"{result.model_uri} ({result.kind}) on {result.splits}: test " + ", ".join(parts)
    # which teachers it learned from, always: labels of an unexpected labeler must be visible where it is trained
    used = {k.split(":", 1)[1]: v for k, v in result.label_counts.items() if k.startswith("labeler:")}
    line += "; labels from " + (", ".join(f"{k} ({v})" for k, v in sorted(used.items())) or "none")
    if result.ignored:
        left = ", ".join(f"{k} ({v})" for k, v in result.ignored.items())
        line += f"; ignored {left}: not named for {result.principle} (distill.labelers chooses)"
    if result.champion:
        line += " -> champion" + (f" (was version {result.previous_champion})" if result.previous_champion else "")
    elif not result.reference.get("passed", True):
        r = result.reference
        whom = f"champion version {result.previous_champion}" if result.previous_champion else "the cold-start scorer"
        line += (
            f" -> not promoted: on {r['n']} held-out {r['reference']} labels it has roc_auc {r['new_roc_auc']:.3f}, "
            f"{whom} {r['incumbent_roc_auc']:.3f}"
        )
    else:
        auc = (result.previous_metrics or {}).get("roc_auc", float("nan"))
        line += f" -> not promoted: champion version {result.previous_champion} has roc_auc {auc:.3f}"
    return line
