"""Progress bars for long steps (tqdm); switched off in tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "file") -> tqdm:
    """A bar advanced by hand with ``update()``, for loops that do not map one item to one step."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    with progress_bar(total, desc, enabled) as bar:
        for item in items:
            yield item
            bar.update()
