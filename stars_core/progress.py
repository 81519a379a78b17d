"""Command-line progress: a tqdm bar on a terminal, plain lines in a log.

With stderr redirected to a file (a scheduler, `nohup`, CI), a tqdm bar writes a carriage-return
redraw every update: the log of a long run becomes megabytes of one line. There the run prints one
plain line at a modest interval instead (every 60 s, or STARS_PROGRESS_INTERVAL seconds; and one at
the end), each readable on its own.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import TextIO


def log_interval() -> float:
    """Seconds between progress lines in a log: STARS_PROGRESS_INTERVAL, default 60."""
    try:
        return max(0.0, float(os.environ.get("STARS_PROGRESS_INTERVAL", "60")))
    except ValueError:
        return 60.0


class LogProgress:
    """The part of tqdm's interface the commands use, as a line every `interval` seconds."""

    def __init__(self, total: int, unit: str, initial: int = 0, what: str = "", file: TextIO | None = None,
                 interval: float | None = None):
        self.total, self.unit, self.n, self.what = total, unit, initial, what
        self.file = file if file is not None else sys.stderr
        self.interval, self.start = log_interval() if interval is None else interval, time.monotonic()
        self.last, self.postfix, self._closed = self.start, "", False
        self.first = self.printed = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line(now)

    def set_postfix(self, values: dict) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n > self.printed:  # the end, unless the last line already said it
                self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.printed = self.n
        elapsed = now - self.start
        done = self.n - self.first
        left = (self.total - self.n) * elapsed / done if done > 0 else None
        text = f"{self.what}{self.n}/{self.total} {self.unit}s ({100 * self.n / max(self.total, 1):.0f} %), " \
               f"{_duration(elapsed)} elapsed" + (f", about {_duration(left)} left" if left and self.n < self.total else "")
        print(text + (f"; {self.postfix}" if self.postfix else ""), file=self.file, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_bar(total: int, unit: str, initial: int = 0, what: str = "", leave: bool = True):
    """A tqdm bar when stderr is a terminal, else `LogProgress` lines."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, leave=leave)
    return LogProgress(total, unit, initial, what)


@contextmanager
def download_bar(what: str):
    """A byte progress bar for a download, made with its first report and closed at the end:
    yields the `progress(done, total)` callback `weights.download.fetch` takes."""
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total or 0, "B", what=f"{what}: ")
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def say(message: str, file: TextIO | None = None) -> None:
    """A message that does not break a terminal's progress bar."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        tqdm.write(message, file=file)
    else:
        print(message, file=file if file is not None else sys.stdout, flush=True)
