"""`curate`'s entry point and its exit codes: every exception a command can raise maps to one code here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

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
from pipelines.core.interrupt import EXIT_INTERRUPTED, interrupted, interrupted_by, stop_on_signals
from pipelines.core.writer_lock import LakeBusy, writer_lock

#: Writing commands whose lock is taken here, before they import the engine, MLflow and the models (seconds on a
#: busy machine): a second writer is refused at once. `iterate` only on a lake that exists (it creates none).
LOCK_FIRST = frozenset({"run", "catch-up", "iterate"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with stop_on_signals():
        try:
            code = _main(args)
        except BaseException:
            if not interrupted():
                raise
            what = (
                "its run is recorded as `interrupted` and the lake's writer lock is released"
                if args.command in LOCK_FIRST
                else "stopped"
            )
            print(f"curate: {interrupted_by()}: {what}", file=sys.stderr)
            code = EXIT_INTERRUPTED
    if interrupted():
        # the engine's threads may still run the query the signal cut short; exiting normally would wait for them
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _lock_first(args: argparse.Namespace) -> bool:
    lake = getattr(args, "lake", None)
    if args.command not in LOCK_FIRST or not lake or getattr(args, "dry_run", False):
        return False
    return args.command != "iterate" or Path(lake).is_dir()


def _remove_if_only_the_lock(lake: Path) -> None:
    """A command that failed before writing anything (a bad input, a config error) leaves no lake behind: the
    early lock made `<lake>/_state/writer.lock`, and nothing else."""
    state = lake / "_state"
    if [p.name for p in lake.iterdir()] == ["_state"] and [p.name for p in state.iterdir()] == ["writer.lock"]:
        (state / "writer.lock").unlink()
        state.rmdir()
        lake.rmdir()


def _main(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "remote", None) and not getattr(args, "dry_run", False):
            from pipelines.core.engine import fail_fast_if_refused

            fail_fast_if_refused(args.remote)
        early = _lock_first(args)
        created = early and not Path(args.lake).exists()
        with writer_lock(args.lake, args.command) if early else nullcontext() as note:
            if note:
                print(f"note: {note}", file=sys.stderr)
            try:
                return int(args.func(args))
            except BaseException:
                if created:  # still holding the lock: no other writer can be using the file
                    _remove_if_only_the_lock(Path(args.lake))
                raise
    except (CLIError, ConfigError, ConstitutionError) as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if interrupted():  # main() says so; the engine's error after an interrupt is not the news
            raise
        from pipelines.core.engine import EngineError

        if isinstance(exc, LakeBusy):  # these first: a refused writer, an absent engine import nothing more
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_BUSY
        if isinstance(exc, EngineError):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        from expectations.runner import GateFailed
        from pipelines.core.lake import LakeError
        from pipelines.stages.ingest import IngestError
        from udfs.benchmarks import BenchmarkError  # a configured benchmark set that is missing or unreadable

        if isinstance(exc, (IngestError, LakeError, BenchmarkError)):
            print(f"curate: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, GateFailed):
            print(f"curate: run stopped before publishing: {exc}", file=sys.stderr)
            return EXIT_FAILED
        from pipelines.core.execute import InvariantViolation

        if isinstance(exc, InvariantViolation):
            lake = getattr(args, "lake", None) or "LAKE"
            print(
                f"curate: error: {exc} (two writers at once, or a bug): the run is recorded as failed; "
                f"`curate repair --lake {lake} --dry-run` shows what would fix the lake, without --dry-run it fixes it",
                file=sys.stderr,
            )
            return EXIT_INVARIANT
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
