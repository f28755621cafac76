"""dedup on planted duplicates of every kind: exact copies (a triple too), re-encodes, resamples, a gain
change, trims at either end, a copy filed under another class."""

import csv

import numpy as np
import pytest

from hawk.dedup import FingerprintSettings, candidates, descriptor, find_duplicates, load_recordings, read_exclude, \
    read_groups, summary_bands, write_exclude, write_report
from hawk.extract import extract_class
from hawk.spectrogram import SpecSettings
from tests.dedup_fixture import pairs, plant


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup")
    truth = plant(root / "rec", originals=8)
    classes = []
    for code in ("AAAA", "BBBB"):
        extract_class(root / "rec" / code, root / f"{code}.db", root / f"{code}.report.csv", code, code,
                      SpecSettings(), workers=1, show_progress=False)
        classes.append((code, root / f"{code}.db", root / "rec" / code))
    return root, truth, load_recordings(classes, FingerprintSettings(), show_progress=False)


def found_pairs(dups) -> set[frozenset]:
    groups: dict[int, set] = {}
    for d in dups:
        groups.setdefault(d.group, {d.kept.key}).add(d.duplicate.key)
    return pairs(groups.values())


def test_finds_every_planted_duplicate_and_nothing_else(planted):
    _, truth, recs = planted
    s = SpecSettings()
    dups = find_duplicates(recs, s.sample_rate / s.hop_length / 4, show_progress=False)
    found, expected = found_pairs(dups), pairs(truth)
    precision = len(found & expected) / len(found)
    recall = len(found & expected) / len(expected)
    assert precision >= 0.99 and recall >= 0.95, (precision, recall, found ^ expected)
    reasons = {d.duplicate.filename: d.reason for d in dups}
    assert reasons["AAAA0_copy.wav"] == "exact copy"
    assert "trimmed" in reasons["AAAA5_trim.wav"]
    assert "resampled" in reasons["AAAA3_22k.wav"]
    assert "filed under AAAA and BBBB" in reasons["BBBB_misfiled.flac"]
    kept = {d.kept.filename for d in dups}
    assert {"AAAA2.wav", "AAAA3.wav", "AAAA5.wav", "AAAA7.wav"} <= kept  # the longest, best-quality copy stays


def test_each_recording_compared_with_its_nearest_few_still_finds_every_copy(planted):
    # the cost that scales: two neighbours per recording instead of every pair of compatible length
    _, truth, recs = planted
    s = SpecSettings()
    fps = s.sample_rate / s.hop_length / 4
    low = summary_bands(s.to_dict(), FingerprintSettings())
    few, every = candidates(recs, round(5 * fps), 2, low), candidates(recs, round(5 * fps), 0)
    assert few < every and len(few) < len(every) / 3
    found = found_pairs(find_duplicates(recs, fps, show_progress=False, neighbours=2, summary=low))
    assert found == found_pairs(find_duplicates(recs, fps, show_progress=False, neighbours=0))
    assert len(found & pairs(truth)) / len(pairs(truth)) >= 0.95


def test_report_and_remove_modes_are_files_not_deletions(planted, tmp_path):
    root, _, recs = planted
    before = sorted(p.name for p in (root / "rec" / "AAAA").iterdir())
    s = SpecSettings()
    dups = find_duplicates(recs, s.sample_rate / s.hop_length / 4, show_progress=False)
    write_report(tmp_path / "duplicates.csv", dups)
    write_exclude(tmp_path / "exclude.csv", [])  # report mode
    assert read_exclude(tmp_path / "exclude.csv") == set()
    write_exclude(tmp_path / "exclude.csv", dups)  # remove mode
    assert ("AAAA", "AAAA1_copy2.wav") in read_exclude(tmp_path / "exclude.csv")
    assert sorted(p.name for p in (root / "rec" / "AAAA").iterdir()) == before
    with open(tmp_path / "duplicates.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) >= {"kept", "duplicate", "distance", "reason"}
    groups = read_groups(tmp_path / "duplicates.csv")
    assert groups[("AAAA", "AAAA7.wav")] == groups[("BBBB", "BBBB_misfiled.flac")]


def test_the_summary_uses_the_bands_a_resampled_copy_keeps():
    """HawkEars' spectrogram (200-13000 Hz, 192 mel bins) in 24 bands: 20 lie below 8 kHz, the
    Nyquist of a 16-kHz copy; on that summary a copy whose top bands went quiet stays its original's
    nearest, where the summary of every band would rank an unrelated recording nearer."""
    s = SpecSettings()
    assert summary_bands(s.to_dict(), FingerprintSettings()) == 20
    assert summary_bands({**s.to_dict(), "mel_scale": False}, FingerprintSettings()) == 14  # bins every 66 Hz
    rng = np.random.default_rng(1)

    def fp(x):
        x = x - x.mean(axis=1, keepdims=True)
        return (x - x.mean(axis=0, keepdims=True)).astype(np.float32)

    shapes = rng.standard_normal((4, 20, 24)) * 3
    song = np.zeros((900, 24))
    for t in range(0, 880, 40):
        song[t : t + 20] += shapes[(t // 40) % 4]
    original = fp(song + rng.standard_normal(song.shape))
    copy = original.copy()
    copy[:, 20:] = copy[:, 20:].min()
    copy = fp(copy + 0.1 * rng.standard_normal(copy.shape))
    other = fp(song[::-1] + rng.standard_normal(song.shape))  # the same calls, another order
    full = [descriptor(x) for x in (original, copy, other)]
    low = [descriptor(x, 20) for x in (original, copy, other)]
    assert low[0] @ low[1] > 0.99 > low[0] @ low[2]
    assert low[0] @ low[1] - low[0] @ low[2] > full[0] @ full[1] - full[0] @ full[2]
