"""Unattended curation: segments with no sound above the recording's background are dropped, listed
with images, and a person's restored image is kept from then on. The real extract and select on real audio."""

import csv
import shutil

import numpy as np

from hawk import activity
from hawk.db import SpecDB
from hawk.download.demo import SYNTHS, background, place, write_audio
from hawk.extract import extract_class
from hawk.spectrogram import SpecSettings
from tests.test_cli_errors import project, stage

SR = 37120
CALLS = (0.5, 1.8, 3.0, 4.2, 11.0, 12.2, 13.4)  # a bout, a 6-s pause, a bout


def planted(seed: int = 0) -> np.ndarray:
    """16 s: whistles at CALLS over noise; the segments at 6.0 and 7.5 s hold none."""
    rng = np.random.default_rng(seed)
    x = background(rng, 16 * SR, 0.02)
    for t in CALLS:
        place(x, SYNTHS["whistle"](rng, SR), int(t * SR), 0.3)
    return (x / np.abs(x).max() * 0.9).astype(np.float32)


def extract_planted(root):
    rec = root / "data" / "recordings" / "RIWH"
    rec.mkdir(parents=True, exist_ok=True)
    write_audio(rec / "r1.wav", planted(), SR)
    (root / "data" / "db").mkdir(parents=True, exist_ok=True)
    extract_class(rec, root / "data" / "db" / "RIWH.db", root / "data" / "db" / "RIWH.report.csv",
                  "Rising Whistler", "RIWH", SpecSettings(), workers=1, show_progress=False)
    return root / "data" / "db" / "RIWH.db"


def test_extract_measures_activity_that_separates_calls_from_background(tmp_path):
    with SpecDB(extract_planted(tmp_path)) as db:
        act = db.activity()["r1.wav"]
    assert sorted(act) == [i * 1.5 for i in range(9)]  # every spectrogram was measured
    assert min(act[0.0], act[1.5], act[12.0]) > 25 and max(act[6.0], act[7.5]) < 15, act


def test_a_database_from_before_activity_is_rebuilt_with_it(tmp_path):
    db_path = extract_planted(tmp_path)
    with SpecDB(db_path) as db, db.transaction():
        db.conn.execute("DELETE FROM Activity")
        db.conn.execute("DELETE FROM HawkMeta WHERE Key = 'activity'")
    with SpecDB(extract_planted(tmp_path)) as db:
        assert db.get_meta("activity") == activity.DEFINITION and len(db.activity()["r1.wav"]) == 9


def dropped_rows(root, restored="0"):
    """The rows of dropped.csv, those left dropped (restored 0) or those a person restored (1)."""
    with open(root / "data" / "dropped" / "RIWH" / "dropped.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["restored"] == restored]


def kept(root):
    with SpecDB(root / "data" / "select" / "RIWH.db") as db:
        return db.offsets()["r1.wav"]


def test_select_drops_a_silent_segment_and_keeps_a_restored_one(tmp_path):
    root = project(tmp_path, search={"queries": {}})
    by = "select.unattended.by=activity"  # the model's scores have tests of their own (test_window_score.py)
    extract_planted(root)
    shutil.rmtree(root / "data" / "recordings")  # select reads no audio: extract measured it all

    r = stage(root, "stages.select", "--code", "RIWH", "select.progress=false", by)
    assert r.returncode == 0, r.stderr
    assert "unattended" in r.stdout and "2 dropped" in r.stdout, r.stdout
    rows = dropped_rows(root)
    assert [float(x["offset"]) for x in rows] == [6.0, 7.5]
    assert all((root / "data" / "dropped" / "RIWH" / x["image"]).is_file() for x in rows)
    assert 6.0 not in kept(root) and {0.0, 1.5, 12.0} <= set(kept(root))

    restored = root / "data" / "curation" / "RIWH" / "restored"
    restored.mkdir(parents=True)
    shutil.copy(root / "data" / "dropped" / "RIWH" / rows[0]["image"], restored)
    for _ in range(2):  # and again: the person's choice stays
        r = stage(root, "stages.select", "--code", "RIWH", "select.progress=false", by)
        assert r.returncode == 0, r.stderr
        assert "1 dropped, 1 restored by you" in r.stdout, r.stdout
        assert 6.0 in kept(root) and 7.5 not in kept(root)
        assert [float(x["offset"]) for x in dropped_rows(root)] == [7.5]
        # still drawn among the drops, marked restored: the review page lists it and can un-restore it
        (back,) = dropped_rows(root, restored="1")
        assert float(back["offset"]) == 6.0 and (root / "data" / "dropped" / "RIWH" / back["image"]).is_file()

    r = stage(root, "stages.select", "--code", "RIWH", "select.progress=false", by,
              "select.unattended.enabled=false")
    assert r.returncode == 0 and "all spectrograms" in r.stdout, r.stdout + r.stderr
    assert 7.5 in kept(root) and dropped_rows(root) == []
