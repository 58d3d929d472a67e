"""Distillation: train a small per-principle classifier on the teacher labels, evaluate it, register it.

- Labels come from `labels` (status `ok`), optionally from chosen labelers only; labels of the same text
  (several doc_ids, several labelers) are averaged into one teacher score.
- The split is by document (a hash of the normalised text): duplicates never straddle train and test, and a
  document stays in its split when labels are added, so two models distilled at different times are
  compared on the test documents they share.
- A document is a positive when its teacher score is >= the principle's `label_threshold`. The heads'
  regularisation (`distill.c`, unset by default) is chosen from `C_GRID` by validation ROC-AUC for the
  encoder and linear kinds (features computed once, so the search costs a few logistic fits); the decision
  threshold is the one that maximises F1 on the validation split; the test split reports ROC-AUC, F1 at
  that threshold and Spearman correlation with the teacher's scores.
- Everything goes to MLflow (params, metrics, training label counts, a calibration plot); the model is
  registered as a pyfunc with a signature under `<model_prefix>_<principle>`, and the alias `champion`
  moves to it only when it beats the current champion's ROC-AUC on this run's test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines import registry
from pipelines.config import RunConfig
from pipelines.registry import CHAMPION, current_champion, model_name

if TYPE_CHECKING:
    from pipelines.lake import Lake

logger = logging.getLogger(__name__)

#: Inverse L2 strengths tried when `distill.c` is unset: noisy crowd labels want strong regularisation, clean
#: LLM labels on a few hundred documents want little; one fixed value served neither.
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


class DistillError(ValueError):
    """Not enough (or unusable) labels to distil from: the message says what to label."""


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
    }
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, scores))
    if len(y) > 2 and np.std(teacher) > 0 and np.std(scores) > 0:
        out["spearman"] = float(spearmanr(scores, teacher).statistic)
    return out


def beats(new: dict[str, float], old: dict[str, float] | None) -> bool:
    """The alias rule: no champion yet, or a strictly better test ROC-AUC (Spearman when AUC is undefined)."""
    if old is None:
        return True
    for key in ("roc_auc", "spearman"):
        if key in new and key in old:
            return new[key] > old[key]
    return False


def choose_c(train_x: Any, train_y: np.ndarray, val_x: Any, val_y: np.ndarray) -> tuple[float, dict[str, float]]:
    """The `C_GRID` value with the best validation ROC-AUC (ties: the stronger regularisation), and every
    value's AUC. 1.0 when the validation split cannot rank (empty or one class)."""
    from sklearn.metrics import roc_auc_score

    from udfs.heads import _logistic, _sigmoid

    if len(val_y) == 0 or val_y.min() == val_y.max():
        return 1.0, {}
    aucs: dict[str, float] = {}
    for c in C_GRID:
        coef, intercept = _logistic(train_x, train_y, c)
        aucs[str(c)] = float(roc_auc_score(val_y, _sigmoid(val_x @ coef + intercept)))
    best = max(C_GRID, key=lambda c: (aucs[str(c)], -c))
    return best, aucs


def fit_head(
    kind: str, texts: list[str], y: np.ndarray, cfg: RunConfig, val: tuple[list[str], np.ndarray] | None = None
) -> tuple[Any, float, dict[str, float]]:
    """(trained head, the C it used, validation AUC per C tried). `val` is searched when `distill.c` is unset."""
    from udfs.heads import EncoderHead, FinetuneHead, LinearHead, _logistic

    fixed = cfg.distill.c
    search = fixed is None and val is not None and kind in ("linear", "encoder")
    if kind == "linear":
        head = LinearHead(n_features=min(cfg.distill.n_features, 2**22))
        x = head.features(texts)
        c, aucs = choose_c(x, y, head.features(val[0]), val[1]) if search and val else (fixed or 1.0, {})
        head.coef, head.intercept = _logistic(x, y, c)
        return head, c, aucs
    if kind == "encoder":
        k = cfg.classify
        enc = EncoderHead(max_tokens=k.max_tokens, batch_size=k.batch_size, device=k.device)
        emb = enc.embed(texts)
        c, aucs = choose_c(emb, y, enc.embed(val[0]), val[1]) if search and val else (fixed or 1.0, {})
        return enc.fit(texts, y, c=c, emb=emb), c, aucs
    if kind == "finetune":
        k = cfg.classify
        head = FinetuneHead(
            max_tokens=k.max_tokens, batch_size=k.batch_size, device=k.device, epochs=cfg.distill.epochs
        )
        c = fixed or 1.0  # a grid would mean one fine-tuning per value
        return head.fit(texts, y, c=c, seed=cfg.distill.seed), c, {}
    raise DistillError(f"unknown model kind {kind!r} (have: encoder, finetune, linear)")


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
    mlflow_run_id: str | None = None
    splits: dict[str, int] = field(default_factory=dict)


def calibration_figure(scores: np.ndarray, y: np.ndarray, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    bins = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(scores, bins) - 1, 0, 9)
    xs, ys, ns = [], [], []
    for b in range(10):
        m = idx == b
        if m.any():
            xs.append(float(scores[m].mean()))
            ys.append(float(y[m].mean()))
            ns.append(int(m.sum()))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(xs, ys, "o-", label="model (test split)")
    for x, yy, n in zip(xs, ys, ns, strict=True):
        ax.annotate(str(n), (x, yy), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel("predicted score")
    ax.set_ylabel("fraction of teacher positives")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _label_rows(lake: Lake, principle: str, labelers: list[str] | None) -> pd.DataFrame:
    from pyspark.sql import functions as F

    df = lake.read("labels").where((F.col("principle") == principle) & (F.col("status") == "ok"))
    if labelers:
        df = df.where(F.col("labeler").isin(labelers))
    return df.select("text_hash", "text", "score", "labeler").toPandas()


def distill(lake: Lake, principle: Any, cfg: RunConfig, kind: str | None = None) -> DistillResult:
    """Train, evaluate, log and register one principle's classifier; move `champion` if it wins."""
    import mlflow
    from mlflow.models import infer_signature

    import udfs.heads as heads_module
    from pipelines.tracking import track
    from udfs.heads import save_head

    kind = kind or cfg.distill.kind
    labelers = [s.strip() for s in cfg.distill.labelers.split(",")] if cfg.distill.labelers else None
    rows = _label_rows(lake, principle.name, labelers)
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
    threshold = choose_threshold(head.predict(val["text"].tolist()), val["y"].to_numpy())
    test_texts = parts["test"]["text"].tolist()
    test_y, test_teacher = parts["test"]["y"].to_numpy(), parts["test"]["teacher"].to_numpy()
    test_scores = head.predict(test_texts)
    metrics = evaluate(test_scores, test_teacher, test_y, threshold)

    cfg = registry.resolve(cfg, lake.state_dir)
    client = registry.client(cfg.classify.registry_uri or "")
    name = model_name(cfg.classify.model_prefix, principle.name)
    old = current_champion(client, name)
    old_metrics: dict[str, float] | None = None
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
                "labelers": ",".join(labelers) if labelers else "all",
                "label_threshold": str(principle.label_threshold),
                "c": str(c),
                "c_chosen_on_validation": str(bool(c_aucs)),
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
            calibration_figure(test_scores, test_y, f"{name} ({kind}) vs teacher, test split"), "calibration.png"
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
        promoted = beats(metrics, old_metrics)
        if promoted:
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
        mlflow_run_id=run_id,
        splits={s: len(p) for s, p in parts.items()},
    )


def describe(result: DistillResult) -> str:
    m = result.metrics
    parts = [f"{k} {m[k]:.3f}" for k in ("roc_auc", "f1", "spearman") if k in m]
    line = f"{result.model_uri} ({result.kind}) on {result.splits}: test " + ", ".join(parts)
    if result.champion:
        line += " -> champion" + (f" (was version {result.previous_champion})" if result.previous_champion else "")
    else:
        auc = (result.previous_metrics or {}).get("roc_auc", float("nan"))
        line += f" -> not promoted: champion version {result.previous_champion} has roc_auc {auc:.3f}"
    return line


def as_dict(result: DistillResult) -> dict[str, Any]:
    return asdict(result)
