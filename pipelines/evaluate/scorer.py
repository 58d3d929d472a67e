"""`curate evaluate-scorer`: how well a principle's judgement agrees with people, before anyone trusts it.

Given a file of human-labelled texts (JSONL, `text` and `label` 0/1 or `score` in [0, 1], as `curate labels
import` reads), it scores them the way the nightly run does (pipelines/stages/classify.py: champion or exemplar scorer,
then the cascade) and reports, for each scorer alone and for the cascade as a whole: ROC-AUC, PR-AUC, F1 and
recall at the principle's revise threshold, and the false-flag rate (share of texts people call clean that
score at or above the revise, and the filter, threshold), with the counts. A ROC, a PR and a calibration plot
and the numbers go to MLflow, and onto the champion's model version as tags, so the registry shows how the
model behaves on people's labels and not only on its teacher's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.core import registry
from pipelines.judgement.label import read_human_labels
from pipelines.judgement.teachers import TeacherScorer

if TYPE_CHECKING:
    from pipelines.core.config import RunConfig
    from pipelines.core.lake import Lake


@dataclass
class ScorerReport:
    scorer: str
    model: str
    n_pos: int
    n_neg: int
    roc_auc: float | None
    pr_auc: float | None
    f1: float
    recall: float
    false_flag_rate: float  # at the revise threshold
    false_flag_rate_filter: float


@dataclass
class EvaluationReport:
    principle: str
    labels: str  # the file's name and sha256
    revise_threshold: float
    filter_threshold: float
    scorers: list[ScorerReport] = field(default_factory=list)
    routed_to_teacher: float = 0.0  # share of the texts the cascade sent to the teacher
    mlflow_run_id: str | None = None
    figure: Any = None


def metrics(name: str, model: str, y: np.ndarray, s: np.ndarray, revise: float, filter_: float) -> ScorerReport:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    both = len(set(y.tolist())) == 2
    neg = y == 0
    return ScorerReport(
        scorer=name,
        model=model,
        n_pos=int(y.sum()),
        n_neg=int(neg.sum()),
        roc_auc=float(roc_auc_score(y, s)) if both else None,
        pr_auc=float(average_precision_score(y, s)) if both else None,
        f1=float(f1_score(y, s >= revise, zero_division=0)),
        recall=float((s[~neg] >= revise).mean()) if (~neg).any() else 0.0,
        false_flag_rate=float((s[neg] >= revise).mean()) if neg.any() else 0.0,
        false_flag_rate_filter=float((s[neg] >= filter_).mean()) if neg.any() else 0.0,
    )


def figure(curves: dict[str, np.ndarray], y: np.ndarray, principle: str, revise: float) -> Any:
    """ROC, precision-recall and calibration (observed positive share per score decile) per scorer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (roc, pr, cal) = plt.subplots(1, 3, figsize=(13, 4))
    both = len(set(y.tolist())) == 2
    for name, s in curves.items():
        if both:
            fpr, tpr, _ = roc_curve(y, s)
            roc.plot(fpr, tpr, label=name)
            p, r, _ = precision_recall_curve(y, s)
            pr.plot(r, p, label=name)
        bins = np.minimum((s * 10).astype(int), 9)
        xs = [float(s[bins == b].mean()) for b in range(10) if (bins == b).any()]
        ys = [float(y[bins == b].mean()) for b in range(10) if (bins == b).any()]
        cal.plot(xs, ys, marker="o", label=name)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    cal.plot([0, 1], [0, 1], color="grey", linestyle=":")
    cal.axvline(revise, color="#dd8452", linestyle="--", label="revise threshold")
    roc.set(title=f"{principle}: ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr.set(title="precision-recall", xlabel="recall", ylabel="precision")
    cal.set(title="calibration", xlabel="mean score in decile", ylabel="share labelled positive")
    roc.legend(loc="lower right")
    cal.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def evaluate_scorer(lake: Lake, principle_name: str, labels_path: str | Path, cfg: RunConfig) -> EvaluationReport:
    """Score the labelled texts with each scorer of the principle's cascade and with the cascade; log to MLflow."""
    from pipelines.core.constitution import load_constitution
    from pipelines.core.tracking import track
    from pipelines.stages.classify import score_texts

    cfg = registry.resolve(cfg, lake.state_dir)
    constitution = load_constitution(cfg.classify.constitution)
    p = constitution.get(principle_name)
    i = constitution.names.index(p.name)
    rows = read_human_labels(labels_path)
    texts = [r["text"] for r in rows]
    y = np.array([1 if r["score"] >= p.label_threshold else 0 for r in rows])
    digest = hashlib.sha256(Path(labels_path).read_bytes()).hexdigest()[:12]
    report = EvaluationReport(p.name, f"{Path(labels_path).name}@{digest}", p.revise_threshold, p.filter_threshold)
    champions = registry.champions_for(constitution, cfg)
    scored, notes = score_texts(lake, texts, cfg, constitution, "evaluate")
    classifier = np.array([r["classifier_scores"][i] for r in scored])
    final = np.array([r["principle_scores"][i] for r in scored])
    routed = np.array([r["teacher_scores"][i] is not None for r in scored])
    model = notes.get(f"model:{p.name}", "")
    curves = {"classifier": classifier}
    report.scorers.append(metrics("classifier", model, y, classifier, p.revise_threshold, p.filter_threshold))
    if p.teacher and not p.positive_kind:
        from udfs.teachers import teacher_model

        teacher = TeacherScorer([p.teacher]).score(texts)[:, 0]
        curves["teacher"] = teacher
        report.scorers.append(
            metrics("teacher", teacher_model(p.teacher), y, teacher, p.revise_threshold, p.filter_threshold)
        )
    curves["cascade"] = final
    report.scorers.append(metrics("cascade", "cascade", y, final, p.revise_threshold, p.filter_threshold))
    report.routed_to_teacher = float(routed.mean()) if len(routed) else 0.0
    report.figure = figure(curves, y, p.name, p.revise_threshold)
    with track(lake.state_dir, cfg.tracking, run_name=f"evaluate:{p.name}") as tracker:
        report.mlflow_run_id = tracker.run_id
        tracker.params({"principle": p.name, "labels": report.labels, "n": str(len(texts)), "classifier": model})
        for s in report.scorers:
            tracker.metrics(
                {
                    f"{s.scorer}_{k}": v
                    for k, v in (
                        ("roc_auc", s.roc_auc),
                        ("pr_auc", s.pr_auc),
                        ("f1", s.f1),
                        ("recall", s.recall),
                        ("false_flag_rate", s.false_flag_rate),
                    )
                    if v is not None
                }
            )
        tracker.metrics({"routed_to_teacher": report.routed_to_teacher})
        tracker.figure(report.figure, f"evaluate_{p.name}.png")
        tracker.tags({"curate.evaluate": p.name, "curate.model": model})
    if p.name in champions:
        # beside the model version in the registry: what people's labels say of it
        mv = champions[p.name].model_uri.rsplit("/", 1)[-1]
        client = registry.client(cfg.classify.registry_uri or "")
        name = registry.model_name(cfg.classify.model_prefix, p.name)
        c = next(s for s in report.scorers if s.scorer == "classifier")
        if c.roc_auc is not None:
            client.set_model_version_tag(name, mv, f"human_roc_auc:{report.labels}", f"{c.roc_auc:.4f}")
    return report
