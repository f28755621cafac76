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
from tests import procs


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
    """kill -9 of the stage must not leave its decoding workers running, even when it dies while they
    are still starting. Each worker is given a named pipe nobody writes, so it blocks forever: only
    the parent-death signal (or the worker's own check that its parent is gone) ends it, and the
    bound below is one only a worker left orphaned can exceed."""
    import os
    import signal
    import sys
    import time

    fifos = []
    for i in range(4):
        os.mkfifo(tmp_path / f"f{i}.wav")
        fifos.append((str(tmp_path / f"f{i}.wav"), str(tmp_path / f"{i}.bin")))
    script = (f"from hawk.extract import _run; from hawk.spectrogram import SpecSettings; "
              f"list(_run([(a, SpecSettings(), b) for a, b in {fifos!r}], 2))")
    with procs.popen([sys.executable, "-c", script]) as parent:
        workers: list[int] = []
        while len(workers) < 2:  # killed as soon as they exist: before or after their initializer
            assert parent.poll() is None, "the parent ended on its own"
            time.sleep(0.05)
            workers = [c for c in _children(parent.pid) if "spawn_main" in _cmdline(c)]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 600
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [w for w in workers if _alive(w)]
        for w in orphans:
            os.kill(w, signal.SIGKILL)
        assert not orphans, "orphaned workers were still running"


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline").read()
    except FileNotFoundError:
        return ""


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


def test_a_second_writer_of_one_database_fails_in_one_line(rec_dir, tmp_path):
    """Two extracts of one class at once would share its spill folder and corrupt its database: the
    second is refused while the first holds the lock, and the database stays whole."""
    from hawk.fsutil import LockedError, exclusive_lock

    with exclusive_lock(tmp_path / ".RIWH.db.extract-lock", "held by this test"):
        with pytest.raises(LockedError, match=r"RIWH\.db is in use by another process \(pid \d+\)"):
            run(rec_dir, tmp_path, workers=1)
        assert not (tmp_path / "RIWH.db").exists()  # refused before any work
    done = run(rec_dir, tmp_path, workers=1)  # the lock is released with its holder
    assert done.added_recordings == 4


def test_two_extract_processes_at_once_corrupt_nothing(rec_dir, tmp_path):
    """Two real processes on one class: one builds the database, the other ends with one line."""
    import sys

    script = ("import sys; from hawk.extract import extract_class; from hawk.spectrogram import SpecSettings; "
              "from hawk.errors import HawkError\n"
              "try:\n"
              f"    r = extract_class({str(rec_dir)!r}, {str(tmp_path / 'RIWH.db')!r}, {str(tmp_path / 'r.csv')!r}, "
              "'R', 'RIWH', SpecSettings(), workers=1, show_progress=False)\n"
              "    print('added', r.added_spectrograms)\n"
              "except HawkError as e:\n"
              "    print('error:', e); sys.exit(2)\n")
    with procs.popen([sys.executable, "-c", script], stdout=-1, text=True) as a, \
            procs.popen([sys.executable, "-c", script], stdout=-1, text=True) as b:
        outs = [p.communicate()[0] for p in (a, b)]
    codes = sorted([a.returncode, b.returncode])
    made = [o for o in outs if o.startswith("added")]
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        assert any("is in use by another process" in o for o in outs), outs
    with SpecDB(tmp_path / "RIWH.db") as db:
        n = db.count("Spectrogram")
        assert [r.value for r in db.spectrograms()] and all(decode(r.value).shape == (192, 384) for r in db.spectrograms())
    assert n == int(made[0].split()[1]), (n, outs)  # nothing doubled


def test_a_damaged_database_is_rebuilt(rec_dir, tmp_path, caplog):
    first = run(rec_dir, tmp_path, workers=1)
    db = tmp_path / "RIWH.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        again = run(rec_dir, tmp_path, workers=1)
    assert any("is damaged" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert again.added_recordings == 4 and again.added_spectrograms == first.added_spectrograms
    with SpecDB(db) as d:
        assert d.count("Spectrogram") == first.added_spectrograms


def test_near_silent_audio_stores_no_blank_spectrograms_and_reads_as_silence(tmp_path):
    """A file silent but for one click stores only the click's segments (the rest would be all-zero
    images); a file of digital zero with stray least-significant bits is silent, not 100 dB of 'call';
    quiet noise reads as quiet noise, with no segment standing out."""
    d = tmp_path / "RIWH"
    d.mkdir()
    sr = 32000
    click = np.zeros(sr * 30, "float32")
    click[sr * 10] = 0.5
    sf.write(d / "click.wav", click, sr, subtype="PCM_16")
    rng = np.random.default_rng(0)
    sf.write(d / "lsb.flac", (rng.standard_normal(sr * 30) * 3e-6).astype("float32"), sr)  # mostly zero
    sf.write(d / "quiet.flac", (rng.standard_normal(sr * 30) * 1e-4).astype("float32"), sr)
    res = run(d, tmp_path, workers=1)
    assert "silent" in report(tmp_path)["lsb.flac"]
    assert res.added_recordings == 2 and res.blank_segments == 17
    with SpecDB(tmp_path / "RIWH.db") as db:
        rows = {}
        for r in db.spectrograms():
            rows.setdefault(r.filename, []).append(decode(r.value).max())
        activity = db.activity()
    assert len(rows["click.wav"]) == 2 and min(rows["click.wav"]) == 1.0  # no all-zero image stored
    quiet = list(activity["quiet.flac"].values())
    assert len(quiet) == 19 and max(quiet) < 15.0  # no edge segment reads as a call
