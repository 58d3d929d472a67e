"""The argument parser: every command, its flags and the function that runs it."""

from __future__ import annotations

import argparse

from pipelines.cli.evaluate import cmd_evaluate
from pipelines.cli.judgement import cmd_distill, cmd_evaluate_scorer, cmd_label, cmd_labels_import, cmd_score
from pipelines.cli.lake import (
    cmd_diff,
    cmd_export,
    cmd_history,
    cmd_maintain,
    cmd_repair,
    cmd_report,
    cmd_restore,
    cmd_sql,
)
from pipelines.cli.nightly import cmd_catch_up, cmd_demo, cmd_iterate, cmd_run

LATEST_COMMIT = (
    "read the latest commits, including what a running or killed night wrote (default: the published state, the "
    "table versions the last successful run, restore or maintenance recorded)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, lake_required: bool = True) -> None:
        p.add_argument("--lake", required=lake_required, help="lake root directory (Delta tables live under it)")
        p.add_argument("--config", help="YAML run config (validated before anything starts)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, repeatable")
        p.add_argument("--remote", help="run on a Spark Connect endpoint, sc://host:port, instead of embedded Sail")

    run = sub.add_parser("run", help="run every stage on one crawl batch and publish a corpus version")
    common(run)
    run.add_argument(
        "--input", required=True, help="a crawl file or directory (JSONL[.gz], JSON, TXT, CSV, Parquet, WET, WARC)"
    )
    run.add_argument("--crawl-id", help="the nightly batch id (default: the input's file name)")
    run.add_argument("--engine", choices=["sail", "classic", "remote"], help="engine kind (default sail)")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan, touch nothing")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=cmd_run)

    cu = sub.add_parser(
        "catch-up", help="run every crawl directory under --crawl-root that has no successful run yet, oldest first"
    )
    common(cu)
    cu.add_argument("--crawl-root", required=True, help="a directory of nightly crawl directories (YYYY-MM-DD)")
    cu.add_argument("--quiet", action="store_true", help="no progress output")
    cu.set_defaults(func=cmd_catch_up)

    sql = sub.add_parser("sql", help="query the lake's tables by name (VERSION AS OF works)")
    common(sql)
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sql.add_argument(
        "--write",
        action="store_true",
        help="allow statements that change the lake (read-only without it; reads the latest commits)",
    )
    sql.add_argument("--latest-commit", action="store_true", help=LATEST_COMMIT)
    sql.add_argument("query")
    sql.set_defaults(func=cmd_sql)

    hist = sub.add_parser("history", help="a table's versions with operation and timestamp")
    hist.add_argument("--lake", required=True)
    hist.add_argument("--format", choices=["table", "json", "csv"], default="table")
    hist.add_argument("--limit", type=int)
    hist.add_argument("table")
    hist.set_defaults(func=cmd_history)

    df = sub.add_parser(
        "diff", help="documents added, removed and changed between two corpus versions, with the decisions behind them"
    )
    common(df)
    df.add_argument("v1", help="the earlier corpus version (as `curate history corpus` lists them)")
    df.add_argument(
        "v2", nargs="?", help="the later corpus version (default: the published one; the latest with --latest-commit)"
    )
    df.add_argument("--latest-commit", action="store_true", help=LATEST_COMMIT)
    df.add_argument("--format", choices=["table", "json", "csv"], default="table")
    df.add_argument(
        "--limit", type=int, default=None, help="rows shown (0: all; default: 100 in the table view, all in json/csv)"
    )
    df.set_defaults(func=cmd_diff)

    rs = sub.add_parser(
        "restore", help="bring the lake back to the state of a corpus version (recorded in runs; undoable)"
    )
    common(rs)
    rs.add_argument("--version", required=True, help="the corpus version to restore (`curate history corpus`)")
    rs.set_defaults(func=cmd_restore)

    mt = sub.add_parser("maintain", help="compact and vacuum every table, keeping the versions users time-travel to")
    mt.add_argument("--lake", required=True)
    keep = mt.add_mutually_exclusive_group()
    keep.add_argument(
        "--retain-versions",
        type=int,
        help="keep what the last N corpus versions need (default 7)",
    )
    keep.add_argument("--retain-hours", type=float, help="keep what corpus versions of the last H hours need")
    mt.add_argument("--dry-run", action="store_true", help="say what would be removed, change nothing")
    mt.set_defaults(func=cmd_maintain)

    demo = sub.add_parser("demo", help="build a demo crawl from packaged real text and run two nights on it")
    common(demo, lake_required=False)
    demo.set_defaults(lake="demo-lake")
    demo.add_argument("--data-dir", help="where the demo crawl files go (default: <lake>-input)")
    demo.add_argument("--nights", type=int, default=2)
    demo.add_argument("--fresh", action="store_true", help="delete the demo lake first")
    demo.add_argument(
        "--no-evaluate",
        dest="evaluate",
        action="store_false",
        help="skip the closing Model A vs Model B comparison (curate evaluate, about 2.5 minutes on 2 cores)",
    )
    demo.set_defaults(func=cmd_demo)

    labels = sub.add_parser("labels", help="manage teacher labels (import human labels)")
    labels_sub = labels.add_subparsers(dest="labels_command", required=True)
    limport = labels_sub.add_parser("import", help="import human labels from JSONL (text + label or score)")
    common(limport)
    limport.add_argument("--principle", required=True)
    limport.add_argument("--labeler", required=True, help="human:<dataset>")
    limport.add_argument("--input", required=True, help="JSONL: text, label (0/1) or score ([0, 1]), optional id")
    limport.set_defaults(func=cmd_labels_import)

    label = sub.add_parser("label", help="label a stratified sample of raw_docs with a teacher")
    common(label)
    label.add_argument("--principle", required=True)
    label.add_argument("--labeler", required=True, help="embedded | openai | transformers | exemplar | jigsaw | stack")
    label.add_argument("--sample", type=int, help="documents to sample (default label.sample)")
    label.set_defaults(func=cmd_label)

    dist = sub.add_parser("distill", help="train a classifier on the labels, log and register it in MLflow")
    common(dist)
    dist.add_argument("--principle", required=True)
    dist.add_argument("--kind", choices=["encoder", "linear", "finetune"], help="default distill.kind (encoder)")
    dist.add_argument(
        "--labelers",
        help="comma-separated labelers to learn from (distill.labelers; default: the principle's teacher, human:*, "
        "iterate.labeler and the cascade's judge)",
    )
    dist.set_defaults(func=cmd_distill)

    score = sub.add_parser("score", help="score documents as the nightly run does (classifier + cascade)")
    common(score)
    score.add_argument(
        "--input",
        required=True,
        help="a file or directory in any format `run` reads (JSONL[.gz], JSON array, TXT, CSV with a text column, "
        "Parquet, WET, WARC); `id` is kept (a .txt file's path; <file>#<position> without one)",
    )
    score.add_argument("--output", required=True, help="Parquet: id, score_<principle>, decided_by_<principle>")
    score.add_argument(
        "--write-labels",
        action="store_true",
        help="write the judge's answers to `labels` (keyed by the text's hash); by default scoring writes nothing",
    )
    score.set_defaults(func=cmd_score)

    ev = sub.add_parser(
        "evaluate-scorer", help="ROC-AUC, PR-AUC, F1 and false flags of each scorer and the cascade on human labels"
    )
    common(ev)
    ev.add_argument("--principle", required=True)
    ev.add_argument("--labels", required=True, help="JSONL: text, label (0/1) or score ([0, 1])")
    ev.add_argument("--format", choices=["table", "json", "csv"], default="table")
    ev.add_argument("--out", help="also write the ROC/PR/calibration plot here")
    ev.set_defaults(func=cmd_evaluate_scorer)

    it = sub.add_parser("iterate", help="relabel, retrain, rescore and re-decide the corpus until a fixed point")
    common(it)
    it.add_argument("--rounds", type=int, help="at most this many rounds (default iterate.rounds)")
    it.add_argument("--labeler", help="exemplar | embedded | openai | transformers | human:<dataset> (imported only)")
    it.add_argument("--sample", type=int, help="documents relabelled per principle and round (default iterate.sample)")
    it.add_argument("--evaluate", action="store_true", help="train and compare Model A vs B after each round")
    it.add_argument("--quiet", action="store_true", help="no progress output")
    it.set_defaults(func=cmd_iterate)

    rep = sub.add_parser("report", help="write one self-contained HTML page about a run (funnel, scores, gates)")
    rep.add_argument("--lake", required=True, help="lake root directory")
    rep.add_argument("--run-id", help="the run to report on (default: the latest successful run)")
    rep.add_argument(
        "--latest-commit",
        action="store_true",
        help="report on the latest night whatever its status (a running or killed one included), reading the tables' "
        "latest commits",
    )
    rep.add_argument("--out", help="the HTML file to write (default: curate-report-<run id>.html here)")
    rep.add_argument("--remote", help="read through a Spark Connect endpoint, sc://host:port, instead of embedded Sail")
    rep.set_defaults(func=cmd_report)

    exp = sub.add_parser("export", help="write training-ready shards of a corpus version (weights, tags, spans)")
    common(exp)
    exp.add_argument(
        "--version", type=int, help="corpus Delta version (default: the published one; the latest with --latest-commit)"
    )
    exp.add_argument("--latest-commit", action="store_true", help=LATEST_COMMIT)
    exp.add_argument("--format", choices=["jsonl", "parquet"], help="default export.format (jsonl)")
    exp.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    exp.add_argument("--quiet", action="store_true", help="no progress bar")
    exp.set_defaults(func=cmd_export)

    rep = sub.add_parser(
        "repair",
        help="find and fix broken lake invariants (a doc in corpus and drops, duplicate rows, a killed run's rows)",
    )
    common(rep)
    rep.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    rep.set_defaults(func=cmd_repair)

    ev = sub.add_parser(
        "evaluate", help="train Model A on the raw crawl and Model B on the curated corpus, compare harm and capability"
    )
    common(ev)
    ev.add_argument("--version", type=int, help="corpus Delta version Model B trains on (default: the latest)")
    ev.add_argument(
        "--baseline", help="what Model A trains on: raw (default: raw_docs as of that version) or a corpus version"
    )
    ev.add_argument("--budget-tokens", type=int, help="training tokens per model (default: the size's)")
    ev.add_argument("--size", choices=["micro", "tiny", "small", "base"], help="model size (default evaluate.size)")
    ev.add_argument("--heldout", help="clean held-out text for perplexity: JSONL with 'text', or blank-line-separated")
    ev.add_argument(
        "--seeds",
        type=int,
        help="training runs per model (default evaluate.seeds, 1); every interval resamples seeds, then items",
    )
    ev.add_argument(
        "--variants",
        help="comma-separated: raw,curated (default) or raw,curated,tagged - Model C trains on the corpus plus "
        "evaluate.retain_fraction (0.1) of the would-be drops, tagged, for the steerability and probe rows",
    )
    ev.add_argument("--quiet", action="store_true", help="no progress output")
    ev.set_defaults(func=cmd_evaluate)
    return parser
