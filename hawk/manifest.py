"""Per-class ``manifest.csv``: the provenance of every recording (where from, whose, which licence).

It travels with the recordings folder and is copied into each spectrogram database, so a training
spectrogram can always be traced to its original URL and licence.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from hawk.fsutil import atomic_open

FIELDS = ("file", "id", "source", "url", "license", "recordist", "species", "quality", "duration", "downloaded")


def read_manifest(path: str | Path) -> dict[str, dict[str, str]]:
    """file name -> row."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def write_manifest(path: str | Path, rows: Iterable[Mapping[str, object]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in sorted(rows, key=lambda r: str(r["file"])):
            w.writerow({k: row.get(k, "") for k in FIELDS})
