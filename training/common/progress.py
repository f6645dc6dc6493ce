"""Progress for people and for logs: a live bar on a terminal, a plain line every few seconds otherwise.

A tqdm bar redraws itself with carriage returns; written to a file or a pipe (nohup, CI, `| tee`), every redraw
stays in the log as one more update on the same "line". So when the stream is not a terminal, progress is a
plain line at most every `LOG_EVERY_S` seconds. `training.synth` uses `progress_bar`, training uses
`training.fitting.progress_callback.LineProgressCallback`; both decide with `is_terminal` and pace with `Every`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LOG_EVERY_S = 10.0  # often enough to see a run is alive, rare enough that a day-long log stays readable


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is an interactive terminal (False for files, pipes, closed or missing streams)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced stream without isatty, or a closed one
        return False


class Every:
    """A pacer: `due()` is True on the first call, then at most once per `seconds` (clock: time.monotonic)."""

    def __init__(self, seconds: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.seconds:
            return False
        self.last = now
        return True


def duration_text(seconds: float) -> str:
    """38.2 → "38 s", 125 → "2:05"."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}" if minutes else f"{seconds} s"


class LineProgress:
    """The part of tqdm's interface the project uses (update, close, context manager), as plain log lines:

    "voices: 12/40 (30%), 1.52 voice/s, 0:18 left" on the first update and then every `every` seconds, and
    "voices: 40/40 done in 0:26" on close. Lines end with a newline and are flushed at once, so a log being
    followed (`tail -f`) is current.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        stream: TextIO | None = None,
        every: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.stream = stream if stream is not None else sys.stderr  # where tqdm writes too
        self.clock, self.pace, self.start = clock, Every(every, clock), clock()
        self.closed = False

    def _write(self, text: str) -> None:
        self.stream.write(f"{self.desc}: {text}\n")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n < self.total and self.pace.due():  # the last update is reported by close()
            elapsed = max(self.clock() - self.start, 1e-9)
            rate = self.n / elapsed
            left = f", {duration_text((self.total - self.n) / rate)} left" if rate > 0 else ""
            share = f" ({self.n / self.total:.0%})" if self.total else ""
            self._write(f"{self.n}/{self.total}{share}, {rate:.2f} {self.unit}/s{left}")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write(f"{self.n}/{self.total} done in {duration_text(self.clock() - self.start)}")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, stream: TextIO | None = None):
    """A tqdm bar when `stream` (default stderr, where tqdm writes) is a terminal, else a `LineProgress`;
    a silent tqdm when not `enabled`. All three take update(n) and close().
    """
    stream = stream if stream is not None else sys.stderr
    if enabled and not is_terminal(stream):
        return LineProgress(total, desc, unit, stream)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=stream)
