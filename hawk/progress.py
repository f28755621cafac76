"""Progress bars for long steps (tqdm), off in tests and when output is not a terminal-friendly log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    yield from tqdm(items, total=total, desc=desc, unit="file", disable=not enabled, dynamic_ncols=True)
