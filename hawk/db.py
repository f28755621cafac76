"""Spectrogram databases in the HawkEars SQLite schema.

Tables Source, Category, Subcategory, Recording, SoundType and Spectrogram have HawkEars' names and
columns, so DB Browser for SQLite, HawkEars' own tools and existing HawkEars databases work unchanged.
hawk adds three tables HawkEars ignores: ``HawkMeta`` (the settings the spectrograms were made with),
``Provenance`` (where each recording came from: URL, licence, recordist...) and ``Activity`` (how far
each spectrogram's loudest sound stands above its recording's background, see hawk/activity.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS Source (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS Category (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS Subcategory (
    ID INTEGER PRIMARY KEY AUTOINCREMENT, CategoryID INTEGER NOT NULL, Name TEXT NOT NULL,
    Synonym TEXT, Code TEXT);
CREATE TABLE IF NOT EXISTS Recording (
    ID INTEGER PRIMARY KEY AUTOINCREMENT, SourceID INTEGER NOT NULL, SubcategoryID INTEGER NOT NULL,
    FileName TEXT NOT NULL, Seconds INTEGER);
CREATE TABLE IF NOT EXISTS SoundType (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS Spectrogram (
    ID INTEGER PRIMARY KEY AUTOINCREMENT, RecordingID INTEGER NOT NULL, Value BLOB NOT NULL,
    Offset REAL NOT NULL, Audio BLOB, Embedding BLOB, Ignore TEXT, Inserted TEXT, SoundTypeID INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS idx_subcategory ON Subcategory (Name);
CREATE INDEX IF NOT EXISTS idx_recording ON Recording (SubcategoryID);
CREATE INDEX IF NOT EXISTS idx_spectrogram_ignore ON Spectrogram (Ignore);
CREATE INDEX IF NOT EXISTS idx_spectrogram_recid ON Spectrogram (RecordingID);
CREATE INDEX IF NOT EXISTS idx_spectrogram ON Spectrogram (Ignore, RecordingID);
CREATE TABLE IF NOT EXISTS HawkMeta (Key TEXT PRIMARY KEY, Value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS Provenance (
    RecordingID INTEGER PRIMARY KEY, Source TEXT, URL TEXT, License TEXT, Recordist TEXT,
    Species TEXT, Quality TEXT, Downloaded TEXT, SampleRate INTEGER, Channels INTEGER);
CREATE TABLE IF NOT EXISTS Activity (SpectrogramID INTEGER PRIMARY KEY, Decibels REAL NOT NULL);
"""

PROVENANCE_FIELDS = ("source", "url", "license", "recordist", "species", "quality", "downloaded")


@dataclass(frozen=True)
class SpecRow:
    id: int
    recording_id: int
    filename: str
    offset: float
    value: bytes


def damage(path: str | Path) -> str:
    """Why the database at ``path`` cannot be used ("" when it is sound): SQLite's quick check, which
    finds truncated files and broken pages without reading every row's values."""
    try:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    return "" if problems == ["ok"] else "; ".join(problems)


class SpecDB:
    """One SQLite spectrogram database; use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn = sqlite3.connect(str(self.path), isolation_level=None)  # explicit transactions
        self.conn.execute("PRAGMA foreign_keys = OFF")
        self.conn.executescript(SCHEMA)

    def __enter__(self) -> "SpecDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a crash inside leaves the database as it was before."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- HawkMeta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT Value FROM HawkMeta WHERE Key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO HawkMeta (Key, Value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- lookup tables --------------------------------------------------------------------------
    def _get_or_insert(self, table: str, name: str) -> int:
        row = self.conn.execute(f"SELECT ID FROM {table} WHERE Name = ?", (name,)).fetchone()
        if row:
            return row[0]
        return self.conn.execute(f"INSERT INTO {table} (Name) VALUES (?)", (name,)).lastrowid

    def source_id(self, name: str) -> int:
        return self._get_or_insert("Source", name)

    def subcategory_id(self, name: str, code: str, category: str = "bird") -> int:
        row = self.conn.execute("SELECT ID FROM Subcategory WHERE Name = ?", (name,)).fetchone()
        if row:
            return row[0]
        cat = self._get_or_insert("Category", category)
        return self.conn.execute(
            "INSERT INTO Subcategory (CategoryID, Name, Synonym, Code) VALUES (?, ?, '', ?)", (cat, name, code)
        ).lastrowid

    # --- recordings and spectrograms -----------------------------------------------------------
    def recordings(self) -> dict[str, int]:
        """FileName -> Recording.ID."""
        return dict(self.conn.execute("SELECT FileName, ID FROM Recording"))

    def insert_recording(
        self, source_id: int, subcategory_id: int, filename: str, seconds: float, provenance: dict[str, Any]
    ) -> int:
        rec = self.conn.execute(
            "INSERT INTO Recording (SourceID, SubcategoryID, FileName, Seconds) VALUES (?, ?, ?, ?)",
            (source_id, subcategory_id, filename, int(round(seconds))),
        ).lastrowid
        self.conn.execute(
            "INSERT INTO Provenance (RecordingID, Source, URL, License, Recordist, Species, Quality, Downloaded,"
            " SampleRate, Channels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec, *(provenance.get(k) for k in PROVENANCE_FIELDS),
             provenance.get("sample_rate"), provenance.get("channels")),
        )
        return rec

    def delete_recording(self, recording_id: int) -> None:
        self.conn.execute("DELETE FROM Activity WHERE SpectrogramID IN (SELECT ID FROM Spectrogram WHERE "
                          "RecordingID = ?)", (recording_id,))
        for table, col in (("Spectrogram", "RecordingID"), ("Provenance", "RecordingID"), ("Recording", "ID")):
            self.conn.execute(f"DELETE FROM {table} WHERE {col} = ?", (recording_id,))

    def insert_spectrograms(self, recording_id: int, rows: Iterable[tuple[float, bytes]], inserted: str) -> int:
        n = 0
        for offset, blob in rows:
            self.conn.execute(
                "INSERT INTO Spectrogram (RecordingID, Value, Offset, Ignore, Inserted) VALUES (?, ?, ?, 'N', ?)",
                (recording_id, blob, offset, inserted),
            )
            n += 1
        return n

    def set_activity(self, recording_id: int, rows: Iterable[tuple[float, float]]) -> None:
        """(offset, dB) for the recording's spectrograms at those offsets."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO Activity (SpectrogramID, Decibels) SELECT ID, ? FROM Spectrogram "
            "WHERE RecordingID = ? AND Offset = ?", ((db, recording_id, o) for o, db in rows))

    def activity(self) -> dict[str, dict[float, float]]:
        """FileName -> {offset: activity in dB} for every measured spectrogram."""
        out: dict[str, dict[float, float]] = {}
        for name, off, db in self.conn.execute(
                "SELECT r.FileName, s.Offset, a.Decibels FROM Activity a JOIN Spectrogram s ON s.ID = "
                "a.SpectrogramID JOIN Recording r ON r.ID = s.RecordingID"):
            out.setdefault(name, {})[off] = db
        return out

    def spectrograms(self, include_ignored: bool = False) -> Iterator[SpecRow]:
        """Every spectrogram with its recording's file name, in recording then offset order."""
        where = "" if include_ignored else "WHERE s.Ignore IS NULL OR s.Ignore != 'Y'"
        query = (
            "SELECT s.ID, s.RecordingID, r.FileName, s.Offset, s.Value FROM Spectrogram s "
            f"JOIN Recording r ON r.ID = s.RecordingID {where} ORDER BY r.FileName, s.Offset"
        )
        for row in self.conn.execute(query):
            yield SpecRow(*row)

    def windows(self) -> Iterator[tuple[int, str, float]]:
        """(ID, FileName, Offset) of every spectrogram not ignored, without reading the images."""
        yield from self.conn.execute(
            "SELECT s.ID, r.FileName, s.Offset FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID "
            "WHERE s.Ignore IS NULL OR s.Ignore != 'Y' ORDER BY r.FileName, s.Offset")

    def spectrograms_by_id(self, ids: Iterable[int]) -> dict[int, SpecRow]:
        """The spectrograms with these IDs (any that are missing are simply absent)."""
        out: dict[int, SpecRow] = {}
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                "SELECT s.ID, s.RecordingID, r.FileName, s.Offset, s.Value FROM Spectrogram s "
                f"JOIN Recording r ON r.ID = s.RecordingID WHERE s.ID IN ({marks})", chunk):
                out[row[0]] = SpecRow(*row)
        return out

    def spectrogram_ids(self, filenames: Iterable[str]) -> list[int]:
        """IDs of every spectrogram of these recordings."""
        names = list(filenames)
        marks = ",".join("?" * len(names))
        return [r[0] for r in self.conn.execute(
            f"SELECT s.ID FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID WHERE r.FileName IN ({marks})",
            names)] if names else []

    def offsets(self) -> dict[str, list[float]]:
        """FileName -> offsets of its spectrograms, ascending."""
        out: dict[str, list[float]] = {}
        for name, off in self.conn.execute(
                "SELECT r.FileName, s.Offset FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID "
                "ORDER BY r.FileName, s.Offset"):
            out.setdefault(name, []).append(off)
        return out

    def provenance(self) -> dict[str, dict[str, Any]]:
        """FileName -> its Provenance row, with the keys :meth:`insert_recording` takes."""
        keys = (*PROVENANCE_FIELDS, "sample_rate", "channels")
        return {row[0]: dict(zip(keys, row[1:])) for row in self.conn.execute(
            "SELECT r.FileName, p.Source, p.URL, p.License, p.Recordist, p.Species, p.Quality, p.Downloaded, "
            "p.SampleRate, p.Channels FROM Recording r LEFT JOIN Provenance p ON p.RecordingID = r.ID")}

    def stored(self, filename: str, code: str) -> tuple[float, dict[float, bytes]]:
        """One recording of class ``code``: its seconds and spectrograms (offset -> encoded value);
        (0, {}) if absent."""
        row = self.conn.execute("SELECT r.ID, r.Seconds FROM Recording r JOIN Subcategory c ON c.ID = r.SubcategoryID "
                                "WHERE r.FileName = ? AND c.Code = ?", (filename, code)).fetchone()
        if row is None:
            return 0.0, {}
        return float(row[1] or 0), dict(self.conn.execute(
            "SELECT Offset, Value FROM Spectrogram WHERE RecordingID = ?", (row[0],)))

    def by_recording(self) -> Iterator[tuple[str, list[SpecRow]]]:
        """(FileName, its spectrograms in offset order) per recording."""
        group: list[SpecRow] = []
        for r in self.spectrograms():
            if group and r.recording_id != group[0].recording_id:
                yield group[0].filename, group
                group = []
            group.append(r)
        if group:
            yield group[0].filename, group

    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
