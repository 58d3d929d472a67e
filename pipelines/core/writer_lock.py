"""One writer per lake: `curate run`, `catch-up`, `iterate`, `demo`, `evaluate`, `restore` and `maintain` hold
`<lake>/_state/writer.lock` while they write.

The lock is an OS file lock (`fcntl.flock`) on that file, so the kernel releases it when its holder exits for any
reason, SIGKILL included: a lock left by a killed run is never an obstacle, and the next writer says that it took
over. The file's content names the holder (command, run id, host, pid, start time) so that a second writer can
refuse at once with a message saying who writes the lake. Re-entrant within one process (an iteration round
inside `curate iterate`, a night inside `curate demo`).

Scope: `flock` is honoured by every process on one machine and, for the same file, on most shared filesystems
(NFS v4, CephFS, Lustre with `flock` mounts); where it is not, the scheduler's own single-instance setting
(deploy/) remains the guard.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_NAME = "writer.lock"
_held: dict[Path, tuple[int, int, dict[str, Any]]] = {}  # lock path -> (fd, depth, record) for this process
_guard = threading.Lock()


class LakeBusy(RuntimeError):
    """Another process writes this lake; the message names it."""


def lock_path(lake_root: str | Path) -> Path:
    return Path(lake_root).resolve() / "_state" / LOCK_NAME


def holder(lake_root: str | Path) -> dict[str, Any] | None:
    """What the lock file says about its last holder (None when there is no readable record)."""
    try:
        text = lock_path(lake_root).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _describe(h: dict[str, Any] | None) -> str:
    if not h:
        return "another process (no holder record)"
    return (
        f"`curate {h.get('command', '?')}` (run {h.get('run_id') or '-'}, host {h.get('host', '?')}, pid "
        f"{h.get('pid', '?')}, since {h.get('started_at', '?')})"
    )


@contextmanager
def writer_lock(lake_root: str | Path, command: str, run_id: str | None = None) -> Iterator[str | None]:
    """Hold the lake's writer lock; raises LakeBusy at once when another process holds it. Yields a note when
    the previous holder ended without releasing the record (killed): the caller may print it.
    Re-entered with a `run_id` the outer holder did not know yet (the CLI takes the lock before the run exists),
    the record gains it, so a refused writer is told which run holds the lake."""
    path = lock_path(lake_root)
    with _guard:
        if path in _held:
            fd, depth, record = _held[path]
            if run_id and not record.get("run_id"):
                record = {**record, "run_id": run_id}
                _write(fd, record)
            _held[path] = (fd, depth + 1, record)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield None
        finally:
            with _guard:
                fd, depth, record = _held[path]
                _held[path] = (fd, depth - 1, record)
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LakeBusy(
            f"lake {Path(lake_root).resolve()} is being written by {_describe(holder(lake_root))}: wait for it to "
            "finish (one writer per lake), or stop that process; a killed writer releases the lock by itself"
        ) from None
    previous = holder(lake_root)
    note = None
    if previous and not previous.get("released"):
        note = f"took over the writer lock left by {_describe(previous)}, which ended without releasing it"
    record = {
        "command": command,
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "released": False,
    }
    _write(fd, record)
    with _guard:
        _held[path] = (fd, 1, record)
    try:
        yield note
    finally:
        with _guard:
            record = _held.pop(path)[2]
        try:
            _write(fd, {**record, "released": True, "released_at": datetime.now(UTC).isoformat(timespec="seconds")})
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _write(fd: int, record: dict[str, Any]) -> None:
    data = json.dumps(record).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
