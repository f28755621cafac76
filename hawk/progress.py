"""Progress of long steps: tqdm bars in a terminal; in a log (output not a terminal, e.g. `dvc repro >
log` or CI), one plain line every 10% or 30 s instead of carriage-return frames. Switched off in tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LogProgress:
    """tqdm's counting interface (``update``, ``set_postfix_str``, a context manager) writing a line
    such as ``embed RIWH: 1200/5000 spec (24%), 41.2/s, ETA 1m32s`` when another 10% is done or
    ``every`` seconds have passed, and a last line when closed (if the count moved since)."""

    def __init__(self, total: int | None, desc: str, unit: str = "file", stream: TextIO | None = None,
                 every: float = 30.0, clock: Any = time.monotonic):
        self.total, self.desc, self.unit, self.every, self.clock = total, desc, unit, every, clock
        self.stream = stream or sys.stderr
        self.n = 0
        self.postfix = ""
        self._start = self._last_time = clock()
        self._tenth = 0  # tenths of the total reported so far
        self._written = 0  # the count the last line showed
        self._closed = False

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        tenth = self.n * 10 // self.total if self.total else 0
        if tenth > self._tenth or now - self._last_time >= self.every:
            self._write(now)
            self._tenth, self._last_time = tenth, now

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self.n / elapsed
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else float("inf")
            eta = f", ETA {_duration(left)}" if self.n < self.total and left != float("inf") else ""
            head = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            head, eta = f"{self.n} {self.unit}", ""
        post = f" [{self.postfix}]" if self.postfix else ""
        return f"{self.desc}: {head}, {rate:.1f}/s{eta}, {_duration(elapsed)} so far{post}"

    def _write(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self._written = self.n

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._written:
                self._write(self.clock())


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "file") -> Any:
    """A bar advanced by hand with ``update()``, for loops that do not map one item to one step: tqdm
    in a terminal, :class:`LogProgress` lines otherwise."""
    if enabled and not is_terminal():
        return LogProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    with progress_bar(total, desc, enabled) as bar:
        for item in items:
            yield item
            bar.update()
