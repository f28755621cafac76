import csv
import shutil
import sqlite3
import zlib

import numpy as np
import pytest
import soundfile as sf

from hawk.db import SpecDB
from hawk.download.demo import make_demo_recordings
from hawk.extract import extract_class
from hawk.plot import plot_db
from hawk.spectrogram import SpecSettings, decode


@pytest.fixture
def rec_dir(tmp_path):
    d = tmp_path / "RIWH"
    d.mkdir()
    make_demo_recordings(d, "whistle", 4, seed=3)  # wav, flac, mp3, ogg... at several rates
    (d / "bad.mp3").write_text("this is not audio")
    sf.write(d / "short.wav", np.random.default_rng(0).standard_normal(8000).astype("float32") * 0.1, 16000)
    sf.write(d / "silent.flac", np.zeros(16000 * 5, "float32"), 16000)
    return d


def run(rec_dir, tmp_path, **kw):
    settings = kw.pop("settings", SpecSettings())
    return extract_class(rec_dir, tmp_path / "RIWH.db", tmp_path / "RIWH.report.csv", "Rising Whistler", "RIWH",
                         settings, show_progress=False, **kw)


def report(tmp_path):
    with open(tmp_path / "RIWH.report.csv") as f:
        return {r["file"]: r["reason"] for r in csv.DictReader(f)}


def test_builds_incrementally_and_reports_skips(rec_dir, tmp_path):
    first = run(rec_dir, tmp_path, workers=2)
    assert first.added_recordings == 4 and first.added_spectrograms > 12
    skipped = report(tmp_path)
    assert set(skipped) == {"bad.mp3", "short.wav", "silent.flac"}
    assert "not readable as audio" in skipped["bad.mp3"] and "too short" in skipped["short.wav"]
    assert "silent" in skipped["silent.flac"]
    again = run(rec_dir, tmp_path, workers=1)
    assert again.added_recordings == 0 and again.kept_recordings == 4
    with SpecDB(tmp_path / "RIWH.db") as db:
        assert db.count("Spectrogram") == first.added_spectrograms and db.count("Recording") == 4
        offsets = sorted({r.offset for r in db.spectrograms()})
        assert offsets[:3] == [0.0, 1.5, 3.0]
        prov = db.conn.execute("SELECT Source, License, Recordist FROM Provenance").fetchall()
        assert all(p == ("demo", "CC0", "hawk demo generator") for p in prov) or all(p[0] == "local" for p in prov)
    # a removed recording leaves the database; a new one is added without touching the rest
    demo = sorted(rec_dir.glob("DEMO*"))
    demo[0].unlink()
    shutil.copy(demo[1], rec_dir / f"NEW{demo[1].suffix}")
    third = run(rec_dir, tmp_path, workers=1)
    assert (third.removed_recordings, third.added_recordings, third.kept_recordings) == (1, 1, 3)


def test_settings_change_rebuilds(rec_dir, tmp_path):
    run(rec_dir, tmp_path, workers=1)
    res = run(rec_dir, tmp_path, workers=1, settings=SpecSettings(offset=3.0))
    assert res.added_recordings == 4
    with SpecDB(tmp_path / "RIWH.db") as db:
        assert {r.offset % 3.0 for r in db.spectrograms()} == {0.0}


def test_crash_mid_recording_leaves_no_partial_recording(rec_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = SpecDB.insert_spectrograms

    def crashing(self, rec_id, rows, inserted):
        calls["n"] += 1
        if calls["n"] == 2:  # second recording: insert two spectrograms, then die
            rows = iter(rows)
            real(self, rec_id, [next(rows), next(rows)], inserted)
            raise KeyboardInterrupt
        return real(self, rec_id, rows, inserted)

    monkeypatch.setattr(SpecDB, "insert_spectrograms", crashing)
    with pytest.raises(KeyboardInterrupt):
        run(rec_dir, tmp_path, workers=1)
    with SpecDB(tmp_path / "RIWH.db") as db:
        assert db.count("Recording") == 1
        orphans = db.conn.execute(
            "SELECT COUNT(*) FROM Spectrogram WHERE RecordingID NOT IN (SELECT ID FROM Recording)").fetchone()[0]
        assert orphans == 0
    monkeypatch.undo()
    res = run(rec_dir, tmp_path, workers=1)  # the re-run completes the job
    assert res.added_recordings == 3 and res.kept_recordings == 1


def test_reads_a_database_built_the_hawkears_way(tmp_path):
    """HawkEars' own tables and inserts (core/database.py), then hawk reads it."""
    path = tmp_path / "hawkears.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE Source (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL);
        CREATE TABLE Category (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL);
        CREATE TABLE Subcategory (ID INTEGER PRIMARY KEY AUTOINCREMENT, CategoryID INTEGER NOT NULL,
            Name TEXT NOT NULL, Synonym TEXT, Code TEXT);
        CREATE TABLE Recording (ID INTEGER PRIMARY KEY AUTOINCREMENT, SourceID INTEGER NOT NULL,
            SubcategoryID INTEGER NOT NULL, FileName TEXT NOT NULL, Seconds INTEGER);
        CREATE TABLE Spectrogram (ID INTEGER PRIMARY KEY AUTOINCREMENT, RecordingID INTEGER NOT NULL,
            Value BLOB NOT NULL, Offset REAL NOT NULL, Audio BLOB, Embedding BLOB, Ignore TEXT, Inserted TEXT);
        INSERT INTO Source (Name) VALUES ('Xeno-Canto');
        INSERT INTO Category (Name) VALUES ('bird');
        INSERT INTO Subcategory (CategoryID, Name, Synonym, Code) VALUES (1, 'American Robin', '', 'AMRO');
        INSERT INTO Recording (SourceID, SubcategoryID, FileName, Seconds) VALUES (1, 1, 'XC12345.mp3', 30);
    """)
    spec = (np.random.default_rng(0).random((192, 384)) * 255).astype(np.uint8)
    conn.execute("INSERT INTO Spectrogram (RecordingID, Value, Offset, Ignore, Inserted) VALUES (1, ?, 4.5, 'N', '2024-01-01')",
                 (zlib.compress(spec.tobytes()),))
    conn.commit()
    conn.close()
    with SpecDB(path) as db:  # opening adds hawk's own tables, leaves HawkEars' data alone
        rows = list(db.spectrograms())
        assert db.recordings() == {"XC12345.mp3": 1}
    assert len(rows) == 1 and rows[0].offset == 4.5 and rows[0].filename == "XC12345.mp3"
    assert np.array_equal((decode(rows[0].value) * 255).round().astype(np.uint8), spec)


def test_hawk_database_has_hawkears_tables(rec_dir, tmp_path):
    run(rec_dir, tmp_path, workers=1)
    conn = sqlite3.connect(tmp_path / "RIWH.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"Source", "Category", "Subcategory", "Recording", "SoundType", "Spectrogram"} <= tables
    cols = [r[1] for r in conn.execute("PRAGMA table_info(Spectrogram)")]
    assert cols[:8] == ["ID", "RecordingID", "Value", "Offset", "Audio", "Embedding", "Ignore", "Inserted"]
    assert conn.execute("SELECT Name, Code FROM Subcategory").fetchall() == [("Rising Whistler", "RIWH")]


def test_plot_names_images_like_hawkears(rec_dir, tmp_path):
    run(rec_dir, tmp_path, workers=1)
    paths = plot_db(tmp_path / "RIWH.db", tmp_path / "img", SpecSettings(), num=5)
    assert len(paths) == 5
    for p in paths:
        stem, offset = p.stem.rsplit("-", 1)
        assert (rec_dir / stem).with_suffix("").name == stem and float(offset) % 1.5 == 0 and p.suffix == ".jpeg"
    assert len(plot_db(tmp_path / "RIWH.db", tmp_path / "all", SpecSettings())) > 5


def _float_wav(path, sr=16000, seconds=8.0, bad=slice(0, 0), value=np.nan):
    x = (np.sin(2 * np.pi * 3000 * np.arange(int(sr * seconds)) / sr) * 0.5).astype("float32")
    x[bad] = value
    sf.write(path, x, sr, subtype="FLOAT")
    return x


def test_non_finite_samples_are_reported_never_stored(tmp_path):
    d = tmp_path / "RIWH"
    d.mkdir()
    _float_wav(d / "good.wav")
    _float_wav(d / "some_nan.wav", bad=slice(40000, 40100))
    _float_wav(d / "some_inf.wav", bad=slice(1000, 1003), value=np.inf)
    _float_wav(d / "all_nan.wav", bad=slice(None))
    (d / "empty.wav").write_bytes(b"")
    res = run(d, tmp_path, workers=1)
    assert res.added_recordings == 1
    skipped = report(tmp_path)
    assert skipped["some_nan.wav"] == "non-finite samples (100 of 128000 samples are NaN or infinite)"
    assert skipped["some_inf.wav"] == "non-finite samples (3 of 128000 samples are NaN or infinite)"
    assert skipped["all_nan.wav"] == "non-finite samples (all 128000 samples are NaN or infinite)"
    assert skipped["empty.wav"] == "empty file (0 bytes)"
    with SpecDB(tmp_path / "RIWH.db") as db:
        assert set(db.recordings()) == {"good.wav"}
        means = [decode(s.value).mean() for s in db.spectrograms()]
        assert max(means) < 0.2  # real spectrograms: mostly dark, never the 80-120/255 of cast raw magnitudes


def test_encode_refuses_a_corrupt_spectrogram():
    from hawk.spectrogram import encode

    with pytest.raises(ValueError, match="outside"):
        encode(np.full((192, 384), np.nan, np.float32))
    with pytest.raises(ValueError, match="outside"):
        encode(np.full((192, 384), 80.0, np.float32))


def _children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []


def _alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of the stage must not leave its decoding workers running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    d = tmp_path / "RIWH"
    d.mkdir()
    for i in range(4):  # long enough that the workers are still busy when the parent dies
        _float_wav(d / f"long{i}.wav", sr=32000, seconds=600)
    script = (f"from hawk.extract import extract_class; from hawk.spectrogram import SpecSettings; "
              f"extract_class({str(d)!r}, {str(tmp_path / 'x.db')!r}, {str(tmp_path / 'x.csv')!r}, 'R', 'RIWH', "
              f"SpecSettings(), workers=2, show_progress=False)")
    parent = subprocess.Popen([sys.executable, "-c", script])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [c for c in _children(parent.pid) if "spawn_main" in open(f"/proc/{c}/cmdline").read()]
        assert len(workers) == 2, "workers never started"
        time.sleep(1.0)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "orphaned workers are still running"
    finally:
        parent.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_small_jobs_run_in_this_process(rec_dir, monkeypatch):
    """workers=0 (auto) starts no pool for a few minutes of audio, and one for more."""
    import hawk.extract as ex

    files = sorted(p for p in rec_dir.iterdir() if p.name != "bad.mp3")
    total = sum(ex.duration(p) for p in files)
    assert total > 10 and ex.duration(rec_dir / "bad.mp3") == 0.0  # headers read; unreadable counts 0
    assert ex._is_small(files)
    monkeypatch.setattr(ex, "SMALL_JOB_SECONDS", total - 1)
    assert not ex._is_small(files)
    pools = []
    monkeypatch.setattr(ex, "_run", lambda jobs, workers: pools.append(workers) or iter(()))
    ex.extract_class(rec_dir, rec_dir.parent / "a.db", rec_dir.parent / "a.csv", "R", "RIWH", SpecSettings(),
                     workers=0, show_progress=False)
    monkeypatch.setattr(ex, "SMALL_JOB_SECONDS", 1e9)
    ex.extract_class(rec_dir, rec_dir.parent / "b.db", rec_dir.parent / "b.csv", "R", "RIWH", SpecSettings(),
                     workers=0, show_progress=False)
    assert pools == [0, 1]  # one per core for the big job, this process for the small one
