"""`curate`'s entry point and its exit codes: every exception a command can raise maps to one code here."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipelines.cli.common import (
    EXIT_BUSY,
    EXIT_ENGINE_LOST,
    EXIT_FAILED,
    EXIT_INVARIANT,
    EXIT_USAGE,
    CLIError,
    engine_lost,
)
from pipelines.cli.parser import build_parser
from pipelines.core.config import ConfigError
from pipelines.core.constitution import ConstitutionError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CLIError, ConfigError, ConstitutionError) as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from expectations.runner import GateFailed
        from pipelines.core.engine import EngineError
        from pipelines.core.lake import LakeError
        from pipelines.stages.ingest import IngestError
        from udfs.benchmarks import BenchmarkError  # a configured benchmark set that is missing or unreadable

        if isinstance(exc, (IngestError, LakeError, EngineError, BenchmarkError)):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, GateFailed):
            print(f"curate: run stopped before publishing: {exc}", file=sys.stderr)
            return EXIT_FAILED
        from pipelines.core.execute import InvariantViolation
        from pipelines.core.writer_lock import LakeBusy

        if isinstance(exc, InvariantViolation):
            lake = getattr(args, "lake", None) or "LAKE"
            print(
                f"curate: error: {exc} (two writers at once, or a bug): the run is recorded as failed; "
                f"`curate repair --lake {lake} --dry-run` shows what would fix the lake, without --dry-run it fixes it",
                file=sys.stderr,
            )
            return EXIT_INVARIANT
        if isinstance(exc, LakeBusy):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_BUSY
        if engine_lost(exc):
            print(
                "curate: error: lost the connection to the Spark engine mid-command; nothing was published after "
                "that point and the run is recorded as failed: restart the engine and rerun",
                file=sys.stderr,
            )
            return EXIT_ENGINE_LOST
        raise


if __name__ == "__main__":
    sys.exit(main())
