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
    a = ev.models["A"]
    models = " vs ".join(f"Model {lab} on {r.data.name}" for lab, r in ev.models.items())
    n_seeds = len(ev.seeds)
    table = Table(
        title=f"{ev.eval_id}: {models} ({ev.size}, {a.n_params:,} parameters, {ev.budget_tokens:,} tokens each, "
        f"{n_seeds} seed{'s' if n_seeds > 1 else ''} per model, {ev.device}); {int(100 * cfg.evaluate.confidence)}% "
        f"hierarchical bootstrap intervals (seeds, then items)"
    )
    for c in ev.table_columns():
        table.add_column(c, justify="left" if c in ("metric", "verdict") else "right")
    for row in ev.table_rows():
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # a log file should hold the table unwrapped
    for caveat in ev.caveats:  # above the table: what the numbers can carry
        console.print(f"[bold]read this first:[/] {caveat}")
    console.print(table)
    for lab, r in ev.models.items():
        hashes = ", ".join(f"seed {s} {h[:12]}" for s, h in zip(r.seeds, r.hashes, strict=True))
        losses = ", ".join(f"{x.final_loss:.3f}" for x in r.results)
        console.print(
            f"Model {lab}: {r.result.tokens:,} tokens ({r.packed.loss_tokens:,} with loss) per seed, "
            f"{sum(x.seconds for x in r.results):.0f}s for {n_seeds} seed(s), {r.result.tokens_per_second:,.0f} "
            f"tokens/s, final loss {losses}, weights {hashes}"
        )
    sizes = ", ".join(f"{k} {n}" for k, n in ev.details.get("forget_sets", {}).items())
    console.print(
        f"forget sets (held-out harmful texts): {sizes or 'none'}; clean held-out documents: see loss.clean n"
    )
    for name, scorer in ev.scorers.items():
        console.print(f"scorer {name}: {scorer}")
    for note in ev.notes:
        console.print(f"note: {note}")
    console.print("[bold]verdict:[/]")
    for sentence in ev.verdict:
        console.print(f"  {sentence}")
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
    if args.seeds is not None:
        extra["evaluate.seeds"] = args.seeds
    if args.variants:
        extra["evaluate.variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    cfg = config_from_args(args, extra)
    root = require_lake(args.lake)
    with spark_session(cfg.engine) as spark:
        evaluate_and_report(Lake(root, spark), cfg, args)
    return 0
