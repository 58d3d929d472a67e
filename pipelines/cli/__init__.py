"""`curate`, the command line: `main` (pipelines/cli/main.py) parses (parser.py) and dispatches to one module per
command group - nightly (run, catch-up, iterate, demo), lake (sql, history, diff, restore, maintain, export,
report, repair), judgement (labels, label, distill, evaluate-scorer, score), evaluate. Nothing else in the product
imports this package."""

from pipelines.cli.main import main
from pipelines.cli.nightly import pending_crawls
from pipelines.cli.parser import build_parser

__all__ = ["build_parser", "main", "pending_crawls"]
