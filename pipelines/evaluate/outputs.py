"""The evaluation's results and where they go: the report dictionary, the figure, MLflow, the `evaluations`
table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.core.config import RunConfig
from pipelines.evaluate import lm

if TYPE_CHECKING:
    from pipelines.core.lake import Lake
from pipelines.evaluate.data import TrainingSet
from pipelines.evaluate.metrics import MODELS, Estimate


@dataclass
class ModelRun:
    """One model label (A, B, C) trained once per seed on one packed stream."""

    label: str
    data: TrainingSet
    packed: lm.Packed
    results: list[lm.TrainResult]  # one per seed, in `seeds` order
    hashes: list[str]  # weights_sha256 per seed
    n_params: int
    seeds: list[int] = field(default_factory=lambda: [0])

    @property
    def result(self) -> lm.TrainResult:
        """The first seed's training run (the one whose weights go to MLflow)."""
        return self.results[0]

    @property
    def weights_sha256(self) -> str:
        return self.hashes[0]


@dataclass
class Evaluation:
    eval_id: str
    corpus_version: int
    baseline: str
    size: str
    budget_tokens: int
    device: str
    models: dict[str, ModelRun]
    metrics: dict[str, dict[str, Estimate]]  # metric -> A | B | B-A -> estimate
    higher_is_better: dict[str, bool]
    notes: list[str]
    out_dir: Path
    mlflow_run_id: str | None = None
    scorers: dict[str, str] = field(default_factory=dict)  # principle -> model and who decided the continuations
    confidence: float = 0.95
    seconds: float = 0.0
    labels: tuple[str, ...] = MODELS
    pairs: list[tuple[str, str]] = field(default_factory=lambda: [("B", "A")])
    seeds: list[int] = field(default_factory=lambda: [0])
    verdict: list[str] = field(default_factory=list)  # plain sentences from the significant rows
    caveats: list[str] = field(default_factory=list)  # what the numbers can carry, said above the table
    details: dict[str, Any] = field(default_factory=dict)  # forget-set sizes, probe layers, timings

    @property
    def diffs(self) -> list[str]:
        return [f"{x}-{y}" for x, y in self.pairs]

    def table_columns(self) -> list[str]:
        return ["metric", *self.labels, *[d.replace("-", " - ") for d in self.diffs], "verdict"]

    def table_rows(self) -> list[tuple[str, ...]]:
        """(metric, per model, per difference, verdict) as text: what the CLI prints; "-" where a row has none."""

        def fmt(e: Estimate | None) -> str:
            if e is None:
                return "-"
            digits = 1 if abs(e.value) >= 10 else 3
            return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"

        rows = []
        for name, by in self.metrics.items():
            verdicts = []
            for d in self.diffs:
                if d not in by:
                    continue
                e = by[d]
                first = d.split("-")[0]
                better = (e.value > 0) == self.higher_is_better[name]
                word = (f"{first} better" if better else f"{first} worse") if e.significant else "n.s."
                verdicts.append(word if len(self.diffs) == 1 else f"{d}: {word}")
            cells = [fmt(by.get(lab)) for lab in (*self.labels, *self.diffs)]
            rows.append((name, *cells, "; ".join(verdicts) if len(self.diffs) > 1 else (verdicts or ["-"])[0]))
        return rows


def report_dict(ev: Evaluation, cfg: RunConfig) -> dict[str, Any]:
    return {
        "eval_id": ev.eval_id,
        "corpus_version": ev.corpus_version,
        "baseline": ev.baseline,
        "size": ev.size,
        "preset": lm.preset(ev.size).__dict__,
        "budget_tokens": ev.budget_tokens,
        "device": ev.device,
        "seconds": round(ev.seconds, 1),
        "determinism": "same seed and inputs give the same numbers on the same machine; compare weights_sha256",
        "config": cfg.evaluate.__dict__,
        "scorers": ev.scorers,
        "seeds": ev.seeds,
        "pairs": ev.diffs,
        "caveats": ev.caveats,
        "verdict": ev.verdict,
        "details": ev.details,
        "models": {
            lab: {
                "data": r.data.name,
                "data_info": r.data.info,
                "n_params": r.n_params,
                "tokens_trained": r.result.tokens,
                "loss_tokens": r.packed.loss_tokens,
                "masked_span_tokens": r.packed.masked_span_tokens,
                "tag_tokens": r.packed.tag_tokens,
                "documents": r.packed.documents,
                "epochs": round(r.packed.epochs, 4),
                "train_seconds": round(r.result.seconds, 2),
                "tokens_per_second": round(r.result.tokens_per_second, 1),
                "final_loss": r.result.final_loss,
                "weights_sha256": r.weights_sha256,
                "weights_sha256_per_seed": dict(zip(map(str, r.seeds), r.hashes, strict=True)),
                "final_loss_per_seed": [x.final_loss for x in r.results],
            }
            for lab, r in ev.models.items()
        },
        "metrics": {
            name: {
                "higher_is_better": ev.higher_is_better[name],
                **{lab: e.__dict__ | {"significant": e.significant} for lab, e in by.items()},
            }
            for name, by in ev.metrics.items()
        },
        "notes": ev.notes,
    }


def figure(ev: Evaluation) -> Any:
    """One panel per metric: A and B with their confidence intervals, the difference's verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ev.metrics)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        by = ev.metrics[name]
        shown = [
            m for m in (*ev.labels, *ev.diffs) if m in by and (m in ev.labels or not any(x in by for x in ev.labels))
        ]
        vals = [by[m].value for m in shown]
        err = np.array(
            [[max(0.0, by[m].value - by[m].low) for m in shown], [max(0.0, by[m].high - by[m].value) for m in shown]]
        )
        names = {"A": "A (raw)" if ev.baseline == "raw" else "A", "B": "B (curated)", "C": "C (tagged)"}
        colours = {"A": "#b0b0b0", "B": "#3a7bd5", "C": "#e08a2c"}
        ax.bar(
            [names.get(m, m) for m in shown],
            vals,
            yerr=err,
            capsize=6,
            color=[colours.get(m, "#6a6a6a") for m in shown],
        )
        d_name = next((x for x in ev.diffs if x in by), None)
        if d_name:
            d = by[d_name]
            verdict = "significant" if d.significant else "n.s."
            ax.set_title(f"{name}\n{d_name} {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}] {verdict}", fontsize=8)
        else:
            ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"{ev.eval_id}: Model A ({ev.baseline}) vs Model B (corpus@{ev.corpus_version}), {ev.size}, "
        f"{ev.budget_tokens:,} tokens each, {len(ev.seeds)} seed(s), {round(100 * ev.confidence)}% hierarchical "
        "bootstrap CIs",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def write_outputs(
    ev: Evaluation,
    lake: Lake,
    cfg: RunConfig,
    tok: Any,
    work: Path,
    prompts: Sequence[str],
    continuations: dict[str, list[list[list[str]]]],
    track: Any,
) -> None:
    import matplotlib.pyplot as plt

    ev.out_dir.mkdir(parents=True, exist_ok=True)
    report = report_dict(ev, cfg)
    fig = figure(ev)
    fig.savefig(ev.out_dir / "comparison.png", dpi=110)
    with (ev.out_dir / "continuations.jsonl").open("w", encoding="utf-8") as fh:
        for i, prompt in enumerate(prompts):
            for lab in ev.labels:
                for seed, conts in zip(ev.models[lab].seeds, continuations[lab], strict=True):
                    row = {"prompt": prompt, "model": lab, "seed": seed, "continuations": conts[i]}
                    fh.write(json.dumps(row) + "\n")
    with track(lake.state_dir, cfg.tracking, f"evaluate {ev.eval_id}") as tracker:
        ev.mlflow_run_id = tracker.run_id
        report["mlflow_run_id"] = ev.mlflow_run_id
        tracker.tags(
            {
                "curate.command": "evaluate",
                "curate.eval_id": ev.eval_id,
                "curate.data.A": ev.models["A"].data.name,
                "curate.data.B": ev.models["B"].data.name,
                **({"curate.data.C": ev.models["C"].data.name} if "C" in ev.models else {}),
            }
        )
        tracker.params(
            {
                "evaluate.size": ev.size,
                "evaluate.budget_tokens": str(ev.budget_tokens),
                "evaluate.corpus_version": str(ev.corpus_version),
                "evaluate.baseline": ev.baseline,
                "evaluate.device": ev.device,
                "evaluate.seed_list": ",".join(map(str, ev.seeds)),
                **{f"evaluate.{k}": str(v) for k, v in cfg.evaluate.__dict__.items() if k not in ("size",)},
                "config_hash": cfg.config_hash(),
            }
        )
        tracker.metrics(
            {
                f"{lab}.{name}".replace("-", "_minus_"): e.value
                for name, by in ev.metrics.items()
                for lab, e in by.items()
            }
        )
        tracker.dict(report, "evaluate/report.json")
        tracker.dict(cfg.to_dict(), "evaluate/config.json")
        tracker.figure(fig, "evaluate/comparison.png")
        for lab, run in ev.models.items():  # the first seed's weights: the others are reproducible from their seed
            folder = work / f"model_{lab.lower()}"
            run.result.model.save_pretrained(folder)  # safetensors + config: loadable with from_pretrained
            tok.save(str(folder / "tokenizer.json"))
            tracker.artifacts(folder, f"model_{lab.lower()}")
        tracker.artifacts(ev.out_dir, "evaluate")
    plt.close(fig)
    (ev.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    lake.append(lake.spark.createDataFrame(evaluation_rows(ev, cfg), _schema()), "evaluations")


def _schema() -> Any:
    from schemas import TABLES

    return TABLES["evaluations"]


def evaluation_rows(ev: Evaluation, cfg: RunConfig) -> list[tuple[Any, ...]]:
    """One row per model and per difference; `n` also holds `seeds`, the training runs behind every interval."""
    now = datetime.now(UTC)
    out = []
    crawls = sorted({c for r in ev.models.values() for c in r.data.info.get("crawl_ids", [])})
    for lab in (*ev.labels, *ev.diffs):
        run = ev.models.get(lab)
        est = {name: by[lab] for name, by in ev.metrics.items() if lab in by}
        if run is None:
            x, y = lab.split("-")
            data = f"{ev.models[x].data.name} - {ev.models[y].data.name}"
        out.append(
            (
                ev.eval_id,
                lab,
                run.data.name if run else data,
                ev.corpus_version,
                ev.baseline,
                run.data.info.get("crawl_ids") if run else crawls,
                ev.size,
                run.n_params if run else ev.models["A"].n_params,
                ev.budget_tokens,
                run.result.tokens if run else None,
                run.packed.loss_tokens if run else None,
                run.packed.documents if run else None,
                float(run.packed.epochs) if run else None,
                cfg.evaluate.seed,
                ev.device,
                float(run.result.seconds) if run else None,
                float(run.result.tokens_per_second) if run else None,
                run.result.final_loss if run else None,
                run.weights_sha256 if run else None,
                {k: float(e.value) for k, e in est.items()},
                {k: float(e.low) for k, e in est.items()},
                {k: float(e.high) for k, e in est.items()},
                {**{k: int(e.n) for k, e in est.items()}, "seeds": len(ev.seeds)},
                {k: bool(e.significant) for k, e in est.items()} if run is None else None,
                cfg.config_hash(),
                ev.mlflow_run_id,
                now,
            )
        )
    return out
