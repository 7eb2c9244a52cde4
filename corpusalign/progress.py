"""Progress bars for long work (rich, on stderr); silent when disabled or when not on a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichProgress


class _Bar:
    def __init__(self, progress: _RichProgress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task = task_id

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


class Progress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    @contextmanager
    def task(self, description: str, unit: str, total: int | None = None) -> Iterator[_Bar]:
        if not self.enabled:
            yield _Bar(None, None)
            return
        columns = [
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
        ]
        with _RichProgress(*columns, console=self.console, transient=False) as progress:
            yield _Bar(progress, progress.add_task(description, total=total))
