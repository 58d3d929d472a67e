"""Progress on stderr for long work: a line per stage with its wall time, a bar where the count is known."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True, highlight=False)
        self._bar: RichProgress | None = None
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
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
