"""Progress on stderr for long work: a line per stage with its wall time, a bar where the count is known (done,
rate, elapsed, ETA). Work that runs in the engine's UDFs reports through `UdfCounter` files the driver polls."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        # the mean rate since the step started: rich's own estimate looks at the last few updates only, so a step
        # that reports in bursts (3 rewrites finishing together after 43 s) read as 72,857/s
        speed = task.completed / task.elapsed if task.completed and task.elapsed else None
        return Text(f"{speed:,.1f}/s" if speed else "-/s")


class Progress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True, highlight=False)
        self._bar: RichProgress | None = None
        self.timings: dict[str, float] = {}
        self.current: str | None = None  # the innermost stage running (what an interrupted run names)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        outer, self.current = self.current, name
        with self._shown(name, t0):
            yield
        self.current = outer  # not on an exception: then it names the stage the run was in

    @contextmanager
    def _shown(self, name: str, t0: float) -> Iterator[None]:
        if not self.enabled:
            yield
            self.timings[name] = time.monotonic() - t0
            return
        interactive = self.console.is_terminal
        status = self.console.status(f"[bold]{name}[/] ...") if interactive else None
        if status is not None:
            status.start()
        try:
            yield
        except BaseException:
            if status is not None:
                status.stop()
            self.console.print(f"[red]x[/] {name} [dim]({time.monotonic() - t0:.1f}s)[/]")
            raise
        if status is not None:
            status.stop()
        self.timings[name] = time.monotonic() - t0
        self.console.print(f"[green]ok[/] {name} [dim]({self.timings[name]:.1f}s)[/]")

    def bar(self, name: str, total: int) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _done: None
        self._bar = RichProgress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._bar.start()
        task = self._bar.add_task(name, total=total)
        bar = self._bar
        return lambda done: bar.update(task, completed=done)

    def end_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @contextmanager
    def polled(self, name: str, total: int, done: Callable[[], int], every_s: float = 0.5) -> Iterator[None]:
        """A bar for work this thread only waits for (a query whose UDFs do it): `done()` is read every `every_s`."""
        if not self.enabled or total <= 0:
            yield
            return
        update = self.bar(name, total)
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(every_s):
                update(min(total, done()))

        thread = threading.Thread(target=poll, name="progress-poll", daemon=True)
        thread.start()
        try:
            yield
            update(total)  # the work ended: all of it is done, whether or not every report reached this machine
        finally:
            stop.set()
            thread.join(timeout=5)
            self.end_bar()


class UdfCounter:
    """Documents done by UDF tasks, counted in files under `root` (a folder the driver reads): each task keeps one
    file with its running count. Executors that cannot reach `root` (another machine) count nothing; the bar then
    jumps to the end when the query ends. Retried tasks may count twice: `Progress.polled` caps at the total."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def done(self) -> int:
        total = 0
        for f in self.root.glob("*.n"):
            try:
                total += int(f.read_text() or 0)
            except (OSError, ValueError):  # replaced while read
                continue
        return total

    @staticmethod
    def task(root: str) -> Callable[[int], None]:
        """In a UDF: `add(n)` after each batch of `n` documents."""
        token, count = uuid.uuid4().hex, [0]

        def add(n: int) -> None:
            count[0] += n
            try:
                tmp = Path(root) / f".{token}.tmp"
                tmp.write_text(str(count[0]))
                tmp.replace(Path(root) / f"{token}.n")
            except OSError:  # not this machine's folder: progress is a nicety, scoring goes on
                pass

        return add
