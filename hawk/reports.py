"""Reports of skipped inputs, so nothing a stage leaves out goes unnoticed."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from hawk.fsutil import atomic_open


def write_skip_report(path: str | Path, skipped: Iterable[tuple[str, str]]) -> None:
    """CSV with one ``file,reason`` row per skipped input (a header only when nothing was skipped)."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "reason"])
        w.writerows(sorted(skipped))
