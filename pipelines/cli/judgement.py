"""Teacher labels, the distilled classifier and scoring outside a run: labels import, label, distill,
evaluate-scorer, score.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.cli.common import CLIError, config_from_args, principle_arg, print_rows, require_lake
from pipelines.core.config import RunConfig


def cmd_labels_import(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.judgement.label import LabelImportError, import_human_labels

    cfg = config_from_args(args)
    principle = principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            n = import_human_labels(Lake(args.lake, spark), principle.name, args.labeler, args.input)
        except LabelImportError as exc:
            raise CLIError(str(exc)) from exc
    print(f"imported {n} label(s) for {principle.name} as {args.labeler} into {Path(args.lake) / 'labels'}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.judgement.label import label_sample, open_labeler

    cfg = config_from_args(args)
    root = require_lake(args.lake)
    principle = principle_arg(cfg, args.principle)
    n = args.sample if args.sample is not None else cfg.label.sample
    with spark_session(cfg.engine) as spark:
        lake = Lake(root, spark)
        try:
            labeler = open_labeler(args.labeler, cfg.label, lake)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        try:
            summary = label_sample(lake, principle, labeler, lake.read("raw_docs"), n, cfg.label)
        finally:
            labeler.close()
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items())) or "none"
    print(
        f"{summary.labeler} on {summary.principle} ({summary.prompt_version}): {summary.requested} sampled, "
        f"{summary.already_labeled} already labelled, {summary.cache_hits} from the cache, {summary.sent} sent; "
        f"statuses: {statuses}"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.judgement.distill import DistillError, describe, distill

    cfg = config_from_args(args, {"distill.labelers": args.labelers} if args.labelers else None)
    if not (Path(args.lake) / "labels" / "_delta_log").is_dir():
        raise CLIError(f"no labels in {args.lake}: run `curate label` or `curate labels import` first")
    principle = principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            result = distill(Lake(args.lake, spark), principle, cfg, kind=args.kind)
        except DistillError as exc:
            raise CLIError(str(exc)) from exc
    print(describe(result))
    return 0


def cmd_evaluate_scorer(args: argparse.Namespace) -> int:
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.evaluate.scorer import evaluate_scorer
    from pipelines.judgement.label import LabelImportError

    cfg = config_from_args(args)
    principle = principle_arg(cfg, args.principle)
    with spark_session(cfg.engine) as spark:
        try:
            report = evaluate_scorer(Lake(args.lake, spark), principle.name, args.labels, cfg)
        except LabelImportError as exc:
            raise CLIError(str(exc)) from exc
    rows = [
        {
            "scorer": s.scorer,
            "model": s.model,
            "n_pos": s.n_pos,
            "n_neg": s.n_neg,
            "roc_auc": None if s.roc_auc is None else round(s.roc_auc, 3),
            "pr_auc": None if s.pr_auc is None else round(s.pr_auc, 3),
            f"f1@{report.revise_threshold}": round(s.f1, 3),
            f"recall@{report.revise_threshold}": round(s.recall, 3),
            f"false_flags@{report.revise_threshold}": round(s.false_flag_rate, 4),
            f"false_flags@{report.filter_threshold}": round(s.false_flag_rate_filter, 4),
        }
        for s in report.scorers
    ]
    title = f"{report.principle} on {report.labels} (cascade sent {100 * report.routed_to_teacher:.1f}% to the teacher)"
    print_rows(list(rows[0]), rows, args.format, title=title)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.figure.savefig(out / f"evaluate_{report.principle}.png", dpi=110)
    print(f"MLflow run {report.mlflow_run_id}: metrics and evaluate_{report.principle}.png (ROC, PR, calibration)")
    return 0


def publish_order() -> tuple[str, ...]:
    from pipelines.core.publish import BRONZE, ORDER

    return (*BRONZE, *ORDER)


def score_inputs(path: str, cfg: RunConfig) -> tuple[list[Any], list[str]]:
    """The ids and texts `curate score` scores: every record of `path` (the formats ingest reads, a directory
    too), or a one-line usage error naming the first record that is not a document and how many there are."""
    from pipelines.stages.ingest import IngestError, read_documents

    try:
        docs, problems = read_documents(path, cfg.ingest)
    except IngestError as exc:
        raise CLIError(str(exc)) from exc
    except OSError as exc:  # a file that vanished or is not readable (permissions) while being listed
        raise CLIError(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from exc
    if problems:
        p = problems[0]
        whole = p.position == 0 and p.reason.split(":")[0] in _FILE_REASONS
        where = f"{p.name}: unreadable file ({p.reason})" if whole else f"{p.name} record {p.position}: {p.reason}"
        more = f"; {len(problems) - 1} more record(s) that are not documents" if len(problems) > 1 else ""
        excerpt = " [" + p.raw[:80].replace("\n", "\\n") + "]" if p.raw else ""
        raise CLIError(
            f"{where}{excerpt}{more}: curate score scores only documents (`curate run` would quarantine these)"
        )
    if not docs:
        raise CLIError(f"{path}: no documents to score")
    ids = [d[0] for d in docs]
    if len({type(i) for i in ids}) > 1:  # a Parquet column holds one type: mixed ids are written as strings
        ids = [str(i) for i in ids]
    return ids, [d[1] for d in docs]


_FILE_REASONS = ("binary_file", "not_gzip", "truncated_file", "unreadable_file", "unsupported_file_type")


def cmd_score(args: argparse.Namespace) -> int:
    """Score documents with the nightly run's cascade (champion or exemplar scorer, packaged teacher, judge):
    keeps `id`, adds `score_<principle>` and `decided_by_<principle>` columns."""
    import pandas as pd

    from pipelines.core.constitution import load_constitution
    from pipelines.core.engine import spark_session
    from pipelines.core.lake import Lake
    from pipelines.stages.classify import score_texts

    cfg = config_from_args(args)
    constitution = load_constitution(cfg.classify.constitution)
    ids, texts = score_inputs(args.input, cfg)
    with spark_session(cfg.engine) as spark:
        lake = Lake(args.lake, spark)
        rows, notes = score_texts(lake, texts, cfg, constitution, "score", write_labels=args.write_labels)
    out = pd.DataFrame({"id": ids})
    for j, name in enumerate(constitution.names):
        out[f"score_{name}"] = [r["principle_scores"][j] for r in rows]
        out[f"decided_by_{name}"] = [r["decided_by"][j] for r in rows]
    out.to_parquet(args.output, index=False)
    models = ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in notes.items() if k.startswith("model:"))
    print(f"scored {len(out)} document(s) ({models}; cascade: classify.cascade) -> {args.output}")
    return 0
