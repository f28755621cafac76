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

The run's ``labels.csv`` grows by appending: each run adds the rows of the recordings it finished, in
the order of the run's inputs, then commits, in one transaction, which rows the file holds and its
length. A rerun cuts the file back to that length (a run killed while appending leaves a partial end)
and appends what is new, so a grown archive costs its new rows, not a rewrite of every row. The file is
written whole again only when rows it holds lost their record: new weights or settings, inputs
removed, ``infer.resume=false``, or a file shorter than committed (edited or deleted by hand). Rows of
recordings added by a later run therefore come after those of earlier runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hawk.fsutil import atomic_open, sha256_file
from hawk.labels import CSV_FIELDS, Label, run_csv_row

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
        if "in_csv" not in {row[1] for row in self.db.execute("PRAGMA table_info(records)")}:
            self.db.execute("ALTER TABLE records ADD COLUMN in_csv INTEGER NOT NULL DEFAULT 0")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
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
        """Drop these records; when ``labels.csv`` holds rows of any, it is marked for a rewrite in the
        same transaction, so no row outlives its record."""
        rels = [(str(r),) for r in rels]
        with self.db:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (rel TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM gone")
            self.db.executemany("INSERT OR IGNORE INTO gone VALUES (?)", rels)
            if self.db.execute("SELECT 1 FROM records JOIN gone USING (rel) WHERE in_csv LIMIT 1").fetchone():
                self.db.execute("DELETE FROM meta WHERE name = 'csv_bytes'")
            self.db.execute("DELETE FROM records WHERE rel IN (SELECT rel FROM gone)")

    def keep_only(self, rels: Iterable[Path | str]) -> None:
        """Forget the records of recordings that are no longer inputs (their label files go too)."""
        keep = {str(r) for r in rels}
        self.forget(r for (r,) in self.db.execute("SELECT rel FROM records") if r not in keep)

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
                self.db.executemany("INSERT OR REPLACE INTO records (rel, key, seconds, labels) "
                                    "VALUES (?, ?, ?, ?)", self.pending)
            self.pending.clear()
        self.last = time.monotonic()

    def read(self, rel: Path | str) -> tuple[float, list[Label]]:
        seconds, labels = self.db.execute("SELECT seconds, labels FROM records WHERE rel = ? AND key = ?",
                                          (str(rel), self.key)).fetchone()
        return float(seconds), [Label(float(a), float(b), c, n, float(s)) for a, b, c, n, s in json.loads(labels)]

    def append_csv(self, path: Path, order: Iterable[Path | str]) -> None:
        """Bring the run's CSV up to date with the committed records: cut it back to its committed
        length, or write it anew when that is unknown or the file is shorter (see the module's note),
        then append the rows of records it lacks, in ``order``, sync, and commit what it holds."""
        self.flush()
        row = self.db.execute("SELECT value FROM meta WHERE name = 'csv_bytes'").fetchone()
        size = path.stat().st_size if path.exists() else -1
        if row is None or size < row[0]:
            with atomic_open(path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(CSV_FIELDS)
            with self.db:
                self.db.execute("UPDATE records SET in_csv = 0")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('csv_bytes', ?)", (path.stat().st_size,))
            committed = path.stat().st_size
        else:
            committed = row[0]
        new = {r for (r,) in self.db.execute("SELECT rel FROM records WHERE in_csv = 0")}
        added = []
        os.truncate(path, committed)
        with open(path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            for rel in map(str, order):
                if rel in new:
                    w.writerows(run_csv_row(rel, lb) for lb in self.read(rel)[1])
                    added.append((rel,))
            f.flush()
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        with self.db:
            self.db.executemany("UPDATE records SET in_csv = 1 WHERE rel = ?", added)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('csv_bytes', ?)", (size,))

    def totals(self) -> tuple[int, float, dict[str, int]]:
        """Recordings, audio seconds and labels per class code of every committed record."""
        n, seconds = self.db.execute("SELECT count(*), coalesce(sum(seconds), 0) FROM records").fetchone()
        per_class = dict(self.db.execute("SELECT json_extract(l.value, '$[2]'), count(*) FROM records, "
                                         "json_each(records.labels) AS l GROUP BY 1"))
        return n, float(seconds), per_class

    def close(self) -> None:
        self.flush()
        self.db.close()
