"""`curate evaluate`: Model A (raw crawl) against Model B (curated corpus)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.cli.common import CLIError, config_from_args, require_lake
from pipelines.core.config import RunConfig


def evaluate_and_report(lake: Any, cfg: RunConfig, args: argparse.Namespace) -> Any:
    """Run `curate evaluate` on an open lake and print its table; shared by evaluate, demo and iterate."""
    from rich.console import Console
    from rich.table import Table

    from pipelines.core.progress import Progress
    from pipelines.evaluate.data import EvaluateError, read_texts
    from pipelines.evaluate.models import evaluate_models

    heldout = read_texts(Path(args.heldout)) if getattr(args, "heldout", None) else None
    try:
        ev = evaluate_models(
            lake,
            cfg,
            version=getattr(args, "version", None),
            baseline=getattr(args, "baseline", None) or "raw",
            heldout=heldout,
            progress=Progress(not getattr(args, "quiet", False)),
        )
    except EvaluateError as exc:
        raise CLIError(str(exc)) from exc
    a, b = ev.models["A"], ev.models["B"]
    table = Table(
        title=f"{ev.eval_id}: Model A on {a.data.name} vs Model B on {b.data.name} ({ev.size}, {a.n_params:,} "
        f"parameters, {ev.budget_tokens:,} tokens each, {ev.device}); {int(100 * cfg.evaluate.confidence)}% "
        "bootstrap intervals"
    )
    for c in ("metric", "A", "B", "B - A", "verdict"):
        table.add_column(c, justify="left" if c in ("metric", "verdict") else "right")
    for row in ev.table_rows():
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # a log file should hold the table unwrapped
    console.print(table)
    for lab, r in ev.models.items():
        console.print(
            f"Model {lab}: {r.result.tokens:,} tokens ({r.packed.loss_tokens:,} with loss) in {r.result.seconds:.0f}s, "
            f"{r.result.tokens_per_second:,.0f} tokens/s, final loss {r.result.final_loss:.3f}, weights "
            f"{r.weights_sha256[:12]}"
        )
    for name, scorer in ev.scorers.items():
        console.print(f"scorer {name}: {scorer}")
    for note in ev.notes:
        console.print(f"note: {note}")
    console.print(
        f"report: {ev.out_dir} (report.json, comparison.png, continuations.jsonl); MLflow run {ev.mlflow_run_id}; "
        f"SQL: curate sql --lake {lake.root} \"SELECT model, metrics FROM evaluations WHERE eval_id = '{ev.eval_id}'\""
    )
    console.print("the same seed and inputs give the same numbers on this machine (weights_sha256 shows it)")
    return ev


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake

    extra: dict[str, Any] = {}
    if args.size:
        extra["evaluate.size"] = args.size
    if args.budget_tokens is not None:
        extra["evaluate.budget_tokens"] = args.budget_tokens
    cfg = config_from_args(args, extra)
    root = require_lake(args.lake)
    with spark_session(cfg.engine) as spark:
        evaluate_and_report(Lake(root, spark), cfg, args)
    return 0
