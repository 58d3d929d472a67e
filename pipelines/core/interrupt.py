"""Ctrl-C and SIGTERM end a command within seconds, and the lake says so.

Python's own Ctrl-C raises KeyboardInterrupt in the main thread, but the Spark engine goes on with the query it
was given (the embedded Sail runs it in its own threads: a classify job keeps scoring), so every later call through
it - recording the run, releasing the session - queues behind that query; a run once hung for over 12 minutes and
ignored a second Ctrl-C. Here the first signal raises `Interrupted` in the main thread and marks the process as
interrupted: the executor then records the run through delta-rs (no engine), the engine is stopped without waiting
for it, the writer lock is released on the way out, and the command exits 130. A second signal exits at once; the
kernel drops the lock and the next writer closes the run (pipelines/core/execute.py `recover_abandoned`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl-C
_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []
_on_signal: list[Callable[[], None]] = []


def describe(signum: int) -> str:
    return _NAMES.get(signum, signal.Signals(signum).name)


class Interrupted(KeyboardInterrupt):
    """A signal asked the process to stop. A KeyboardInterrupt, so `except Exception` never swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {describe(signum)}")


def interrupted() -> bool:
    """Whether a stop signal has arrived: code on the way out must not wait for the engine."""
    return bool(_received)


def interrupted_by() -> str:
    """`interrupted by SIGINT (Ctrl-C)`: the reason a run records (never the engine's error that followed)."""
    return f"interrupted by {describe(_received[0])}" if _received else "interrupted"


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside: the first SIGINT or SIGTERM raises `Interrupted` in the main thread, the second exits at once.
    Outside the main thread (signals are only delivered there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if _received:
            os.write(2, b"curate: interrupted again: exiting now (the next writer closes the run)\n")
            os._exit(128 + signum)
        _received.append(signum)
        os.write(2, f"curate: {describe(signum)}: ending the run (send it again to exit at once)\n".encode())
        for callback in list(_on_signal):
            with contextlib.suppress(Exception):  # a callback only shortens the way out; the interrupt happens anyway
                callback()
        raise Interrupted(signum)

    _received.clear()
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` in the signal handler, before `Interrupted` is raised, while inside (e.g. to stop an engine
    client from retrying what the interrupt cuts short)."""
    _on_signal.append(callback)
    try:
        yield
    finally:
        _on_signal.remove(callback)


def bounded(stop: Callable[[], None], wait_s: float = 3.0) -> None:
    """`stop()`, but after a stop signal only for `wait_s`: a busy engine must not keep an interrupted command."""
    if not interrupted():
        stop()
        return
    thread = threading.Thread(target=stop, name="stop-after-interrupt", daemon=True)
    thread.start()
    thread.join(wait_s)
