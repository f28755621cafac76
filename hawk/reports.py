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


def merge_skip_report(path: str | Path, skipped: Iterable[tuple[str, str]], date: str,
                      resolved: Iterable[str] = ()) -> None:
    """Add this run's ``(id, reason)`` rows to a ``file,reason,date`` report kept across runs: a
    recording's latest reason wins, and earlier rows of ids in ``resolved`` (fetched this run) drop out."""
    path = Path(path)
    rows: dict[str, tuple[str, str]] = {}
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rows[row["file"]] = (row.get("reason", ""), row.get("date") or "")
    for rid in resolved:
        rows.pop(rid, None)
    for rid, reason in skipped:
        rows[rid] = (reason, date)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "reason", "date"])
        w.writerows((rid, reason, d) for rid, (reason, d) in sorted(rows.items()))
