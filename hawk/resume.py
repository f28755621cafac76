"""What a run of infer has finished, so that a rerun (after an interruption, or on a grown archive)
scores only what is left.

One SQLite file, ``<labels>/.hawk-infer/records.sqlite``, with one row per finished recording: the run
key, the audio seconds and the labels. A row counts only when its key matches, and the key is the
SHA-256 of the checkpoints' bytes plus every setting that changes the labels, so new weights or a new
threshold score everything again.

Rows are committed in batches, after one ``os.sync`` has put the batch's label files on disk, so a row
still means its label files are complete, while an archive of 100,000 recordings costs a few hundred
syncs and commits instead of 300,000 fsyncs (slow on the shared file systems clusters use), and one
query to resume instead of a file read per recording. A killed run loses at most one batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hawk.fsutil import sha256_file
from hawk.labels import Label

FOLDER = ".hawk-infer"


def run_key(checkpoints: list[Path], settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for p in checkpoints:
        h.update(sha256_file(p).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


class LabelRecords:
    """The index of finished recordings, by path relative to the labels folder; a context manager that
    commits what is pending when it closes."""

    def __init__(self, out: Path, key: str, batch: int = 64, seconds: float = 2.0):
        self.path = Path(out) / FOLDER / "records.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.batch = max(1, batch)  # recordings per commit, at most
        self.seconds = seconds  # and at most this long between commits, so slow archives keep progress too
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS records (rel TEXT PRIMARY KEY, key TEXT NOT NULL, "
                        "seconds REAL NOT NULL, labels TEXT NOT NULL)")
        self.db.commit()
        self.pending: list[tuple[str, str, float, str]] = []
        self.last = time.monotonic()

    def __enter__(self) -> "LabelRecords":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def finished(self) -> dict[str, float]:
        """Audio seconds of every recording finished with this key (committed rows only)."""
        return dict(self.db.execute("SELECT rel, seconds FROM records WHERE key = ?", (self.key,)))

    def forget(self, rels: Iterable[Path | str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM records WHERE rel = ?", ((str(r),) for r in rels))

    def write(self, rel: Path | str, seconds: float, labels: list[Label]) -> None:
        """Record a recording whose label files were just written; committed with its batch."""
        rows = [[lb.start, lb.end, lb.code, lb.name, lb.score] for lb in labels]
        self.pending.append((str(rel), self.key, float(seconds), json.dumps(rows)))
        if len(self.pending) >= self.batch or time.monotonic() - self.last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            os.sync()  # the batch's label files reach the disk before the rows that vouch for them
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)", self.pending)
            self.pending.clear()
        self.last = time.monotonic()

    def read(self, rel: Path | str) -> tuple[float, list[Label]]:
        seconds, labels = self.db.execute("SELECT seconds, labels FROM records WHERE rel = ? AND key = ?",
                                          (str(rel), self.key)).fetchone()
        return float(seconds), [Label(float(a), float(b), c, n, float(s)) for a, b, c, n, s in json.loads(labels)]

    def close(self) -> None:
        self.flush()
        self.db.close()
