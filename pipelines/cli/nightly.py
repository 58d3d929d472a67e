"""The nightly commands: run, catch-up, iterate, demo."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.cli.common import CLIError, config_from_args, require_lake
from pipelines.cli.evaluate import evaluate_and_report
from pipelines.cli.judgement import publish_order
from pipelines.core.config import RunConfig
from schemas.vocab import Action


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.chains.run import NIGHTLY, context, run_pipeline
    from pipelines.core.progress import Progress

    cfg = config_from_args(args)
    if args.dry_run:
        from pipelines.core.stage import describe

        ctx = context(args.lake, args.input, cfg, args.crawl_id, champions=False)
        plan = {
            "lake": str(Path(args.lake).resolve()),
            "crawl_id": ctx.crawl_id,
            "inputs": [{"path": f.path, "format": f.fmt} for f in ctx.inputs],
            "principles": {p.name: p.mode for p in ctx.constitution.principles},
            "stages": [*describe(NIGHTLY.stages, ctx), {"stage": "publish", "tables": list(publish_order())}],
            "config_hash": ctx.cfg.config_hash(),
            "config": ctx.cfg.to_dict(),
        }
        sys.stdout.write(yaml.safe_dump(plan, sort_keys=False))
        return 0
    summary = run_pipeline(args.lake, args.input, cfg, crawl_id=args.crawl_id, progress=Progress(not args.quiet))
    report_run(summary, args.lake)
    return 0


def pending_crawls(lake: Path, crawl_root: Path) -> tuple[list[Path], list[str]]:
    """The crawl directories under `crawl_root` (sorted by name: name them YYYY-MM-DD) whose name has no successful
    run in the lake yet, oldest first; and the names already done."""
    from pipelines.core.lake import Lake

    if not crawl_root.is_dir():
        raise CLIError(f"crawl root {crawl_root} is not a directory")
    from pipelines.ops.versions import live_crawls, read_runs

    # a night undone by `curate restore` is pending again
    done = live_crawls(read_runs(Lake(lake)))
    nights = sorted(p for p in crawl_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in nights if p.name not in done], sorted(p.name for p in nights if p.name in done)


def cmd_catch_up(args: argparse.Namespace) -> int:
    """Every crawl directory without a successful run, oldest first: a missed night is never skipped."""
    from pipelines.chains.run import run_pipeline
    from pipelines.core.progress import Progress
    from pipelines.core.writer_lock import writer_lock

    cfg = config_from_args(args)
    lake = Path(args.lake)
    with writer_lock(lake, "catch-up") as note:
        if note:
            print(f"note: {note}", file=sys.stderr)
        todo, done = pending_crawls(lake, Path(args.crawl_root))
        print(f"{len(todo)} night(s) to process, {len(done)} already done: {', '.join(p.name for p in todo) or '-'}")
        for night in todo:
            print(f"== curate run on {night} (crawl id {night.name})", flush=True)
            summary = run_pipeline(lake, night, cfg, crawl_id=night.name, progress=Progress(not args.quiet))
            report_run(summary, str(lake))
    return 0


def report_run(summary: Any, lake: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    c = summary.counts
    console.print(
        f"\n[bold]run {summary.run_id}[/] crawl [bold]{summary.crawl_id}[/]: {summary.status} in {summary.seconds:.0f}s"
    )
    t = Table(title="what happened to the input", show_header=True)
    t.add_column("outcome")
    t.add_column("documents", justify="right")
    t.add_row("records read", str(c.get("records", 0)))
    t.add_row("  quarantined (malformed)", str(c.get("quarantined", 0)))
    t.add_row("  already ingested earlier", str(c.get("already_ingested", 0)))
    t.add_row("  repeated within the batch", str(c.get("repeated_in_batch", 0)))
    t.add_row("decided this run", str(c.get("pending", 0)))
    for action in Action:
        t.add_row(f"  {action}", str(c.get(f"action:{action}", 0)))
    console.print(t)
    reasons = sorted(
        ((k.split(":", 1)[1], v) for k, v in c.items() if k.startswith(("reason:", "quarantine:"))),
        key=lambda kv: -kv[1],
    )
    if reasons:
        r = Table(title="reasons (drops, revisions, tags and quarantine)")
        r.add_column("reason")
        r.add_column("count", justify="right")
        for name, n in reasons:
            r.add_row(name, str(n))
        console.print(r)
    if c.get("deferred_total", 0):
        console.print(
            f"deferred backlog: [bold]{c['deferred_total']}[/] document(s) had no revision budget (revise.max_docs, "
            "max_excise_docs or time_budget_s: reason revision_over_cap / revision_over_budget) or are copies of a "
            "page nothing published and nothing judged (unpublished_representative); the next run takes them first "
            f"(oldest ingested {c.get('deferred_oldest_age_h', 0)} h ago):\n"
            f'  curate sql --lake {lake} "SELECT d.doc_id, d.reasons, r.ingested_at FROM decisions d JOIN raw_docs r '
            f"USING (doc_id) WHERE d.action = 'defer' AND d.run_id = '{summary.run_id}'\""
        )
    console.print(
        f"corpus now holds [bold]{c.get('corpus_size', 0)}[/] documents; accounting invariant holds "
        f"({c.get('raw_docs_total', 0)} ingested documents, {c.get('unaccounted', 0)} unaccounted).\n"
        "Query it:\n"
        f'  curate sql --lake {lake} "SELECT action, count(*) FROM decisions GROUP BY action"\n'
        f'  curate sql --lake {lake} "SELECT reason, count(*) FROM quarantine GROUP BY reason"\n'
        f'  curate sql --lake {lake} "SELECT principle, avg(score), max(score) FROM scores GROUP BY principle"\n'
        f"  curate history --lake {lake} corpus"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.core.progress import Progress
    from pipelines.core.writer_lock import LOCK_NAME, writer_lock
    from pipelines.ops.demo import build_demo_crawls

    cfg = config_from_args(args)
    if cfg.revise.method == "auto":  # the demo shows LLM rewrites too: the packaged model, even on a CPU (README)
        cfg = replace(cfg, revise=replace(cfg.revise, method="llm"))
    lake = Path(args.lake)
    data_dir = Path(args.data_dir) if args.data_dir else lake.parent / f"{lake.name}-input"
    progress = Progress(True)
    with progress.stage(f"building the demo crawl in {data_dir}"):
        nights = build_demo_crawls(data_dir)
    with writer_lock(lake, "demo"):  # the nights and the comparison, as one writer
        if args.fresh:  # only once the lock is ours: never delete a lake another process writes
            import shutil

            for child in [*lake.iterdir(), *(lake / "_state").iterdir()]:
                if child.name not in ("_state", LOCK_NAME):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        _demo_nights(args, cfg, lake, nights, progress)
    return 0


def _demo_nights(args: argparse.Namespace, cfg: RunConfig, lake: Path, nights: list[Path], progress: Any) -> None:
    from pipelines.chains.run import run_pipeline

    for path in nights[: args.nights]:
        progress.console.print(f"\n[bold]nightly run on {path.name}[/]")
        summary = run_pipeline(lake, path, cfg, progress=progress)
        report_run(summary, str(lake))
    if args.evaluate:
        from pipelines.core.engine import spark_session
        from pipelines.core.lake import Lake

        progress.console.print(
            f"\n[bold]does the curation help? Model A on the raw crawl vs Model B on the curated corpus "
            f"({cfg.evaluate.size})[/]"
        )
        with spark_session(cfg.engine) as spark:
            evaluate_and_report(Lake(lake, spark), cfg, args)


def cmd_iterate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from pipelines.chains.iterate import iterate
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.core.progress import Progress

    extra: dict[str, Any] = {}
    if args.labeler:
        extra["iterate.labeler"] = args.labeler
    if args.sample is not None:
        extra["iterate.sample"] = args.sample
    if args.evaluate:
        extra["iterate.evaluate"] = True
    cfg = config_from_args(args, extra)
    root = require_lake(args.lake)
    if not (root / "decisions" / "_delta_log").is_dir():
        raise CLIError(f"no decisions in {root}: run `curate run` first")
    with spark_session(cfg.engine) as spark:
        try:
            summary = iterate(Lake(root, spark), cfg, rounds=args.rounds, progress=Progress(not args.quiet))
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
    # one column per principle: the flagged share is what people compare across rounds
    principles = list(summary.rounds[0].flagged_fraction) if summary.rounds else []
    audited = sorted({p for r in summary.rounds for p in r.teacher_harmful})
    table = Table(
        title=f"iterate on {root}: % of re-decided documents flagged (positive principles: upweighted); "
        "teacher: % of kept documents the packaged teacher flags"
    )
    columns = ("round", "status", "re-decided", "changed", *principles, *[f"teacher {p}" for p in audited])
    for c in (*columns, "champion moved", "corpus version"):
        table.add_column(c, justify="left" if c in ("status", "champion moved") else "right")
    for r in summary.rounds:
        table.add_row(
            str(r.round),
            r.status,
            str(r.redecided),
            str(r.changed),
            *[f"{100 * r.flagged_fraction.get(p, 0.0):.1f}%" for p in principles],
            *[f"{100 * r.teacher_harmful[p]:.2f}%" if p in r.teacher_harmful else "-" for p in audited],
            ", ".join(r.promoted) or "-",
            "" if r.corpus_version is None else str(r.corpus_version),
        )
    Console().print(table)
    evaluated = [r for r in summary.rounds if r.eval_id]
    if evaluated:
        names = list(evaluated[0].eval_diff)
        et = Table(title="Model B (round's corpus) - Model A (raw crawl), per round: `curate evaluate` differences")
        for c in ("round", "eval_id", *names):
            et.add_column(c, justify="left" if c == "eval_id" else "right")
        for r in evaluated:
            et.add_row(str(r.round), r.eval_id or "", *[f"{r.eval_diff.get(n, float('nan')):+.3f}" for n in names])
        Console().print(et)
    stop = "reached a fixed point" if summary.fixed_point else f"stopped after {len(summary.rounds)} round(s)"
    print(f'{stop}; rounds are in `runs` (curate sql --lake {args.lake} "SELECT * FROM runs") and MLflow')
    return 0
