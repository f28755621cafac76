"""Curation by the model: out-of-fold window scores (hawk/window_score.py) and the score and select
stages on real audio, real BirdNET embeddings and a real project folder."""

import csv
import shutil

import numpy as np
import pytest

from hawk.db import SpecDB
from hawk.download.demo import SYNTHS, background, place, write_audio
from hawk.extract import extract_class
from hawk.spectrogram import SpecSettings
from hawk.window_score import ScoreError, ScoreSettings, fold_of, keep_scores, out_of_fold, relative_scores
from tests.test_cli_errors import project, stage
from tests.test_unattended import SR, planted


def clusters(seed=0, recordings=8, windows=20, empty=0.35):
    """Bird classes A and B whose recordings hold calls (their own cluster) and empty windows (the
    background cluster that Noise is made of); returns vectors, labels, groups and which hold a call."""
    rng = np.random.default_rng(seed)
    centre = {k: rng.standard_normal(8) * 3 for k in ("A", "B", "N")}
    x, y, g, call = [], [], [], []
    for ci, code in enumerate(("A", "B", "N")):
        for r in range(recordings):
            for _ in range(windows):
                holds = code != "N" and rng.random() > empty
                x.append(centre[code if holds else "N"] + rng.standard_normal(8))
                y.append(ci)
                g.append(f"{code}{r}")
                call.append(holds)
    return np.array(x, np.float32), np.array(y), g, np.array(call)


def test_folds_keep_groups_whole_and_are_seeded():
    groups = [f"r{i // 3}" for i in range(30)]
    f = fold_of(groups, 5, 0)
    assert all(len({f[i] for i in range(30) if groups[i] == g}) == 1 for g in set(groups))
    assert sorted(set(f.tolist())) == [0, 1, 2, 3, 4] and (f == fold_of(groups, 5, 0)).all()


def test_a_window_is_scored_by_a_model_that_never_saw_its_recording():
    x, y, g, _ = clusters()
    one = ScoreSettings(rounds=1)
    before = out_of_fold(x, y, g, 3, one)
    flipped = y.copy()
    mine = np.array([name == "A0" for name in g])
    flipped[mine] = 1  # lie about recording A0's class: its own scores cannot change
    after = out_of_fold(x, flipped, g, 3, one)
    assert np.allclose(before[mine], after[mine]) and not np.allclose(before[~mine], after[~mine])


def test_empty_windows_of_a_class_score_low_and_round_two_sharpens_them():
    from sklearn.metrics import roc_auc_score

    x, y, g, call = clusters()
    bird = y < 2
    one = out_of_fold(x, y, g, 3, ScoreSettings(rounds=1), background=2, relabel=bird)
    two = out_of_fold(x, y, g, 3, ScoreSettings(rounds=2), background=2, relabel=bird)
    own1, own2 = relative_scores(one, y), relative_scores(two, y)
    assert roc_auc_score(call[bird], own2[bird]) > roc_auc_score(call[bird], own1[bird]) > 0.9
    assert (own2[bird & call] < 0.25).mean() < 0.02  # calls are kept at select's default
    assert (own2[bird & ~call] >= 0.25).mean() < 0.5 * (own1[bird & ~call] >= 0.25).mean()
    assert own2[bird & ~call].mean() < own1[bird & ~call].mean()  # taught as background, not as "a bit of A"
    assert np.median(own2[~bird]) == 1.0  # Noise itself is never relabelled: mostly its own best guess


@pytest.mark.parametrize("seed", [3, 4])
def test_the_keep_score_judges_a_window_against_its_own_recording(seed):
    """Each recording has its own background (a loud stream, distant traffic) that shifts all its
    windows alike: judged against its recording, calls still stand out from pauses, where a single
    threshold over raw shares mixes one recording's pauses with another's calls."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    x, y, g, call = clusters(seed=seed)
    loud = {name: rng.standard_normal(8) * 4 for name in sorted(set(g))}
    x = x + np.array([loud[name] for name in g], np.float32)
    bird = y < 2
    probs = out_of_fold(x, y, g, 3, ScoreSettings(), background=2, relabel=bird)
    share = relative_scores(probs, y, background=2)
    keep = keep_scores(probs, y, g, 2, ScoreSettings().recording_quantile)
    assert roc_auc_score(call[bird], keep[bird]) > roc_auc_score(call[bird], share[bird]) + 0.02
    assert (keep[bird & call] >= 0.5).mean() > (share[bird & call] >= 0.5).mean() + 0.03
    assert (keep[bird & ~call] >= 0.5).mean() <= (share[bird & ~call] >= 0.5).mean()
    assert keep.max() == 1.0 and keep_scores(probs[:1], y[:1], g[:1], 2, 0.75)[0] == 1.0  # one window: its own level


def test_scoring_needs_two_classes_and_two_groups():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ScoreError, match="two classes"):
        out_of_fold(x, np.zeros(4, int), ["a", "a", "b", "b"], 2)
    with pytest.raises(ScoreError, match="two groups"):
        out_of_fold(x, np.array([0, 1, 0, 1]), ["a"] * 4, 2)


def _chirps(seed):
    rng = np.random.default_rng(seed)
    x = background(rng, 16 * SR, 0.02)
    for t in (0.5, 1.8, 3.0, 4.2, 11.0, 12.2, 13.4):
        place(x, SYNTHS["chirp"](rng, SR), int(t * SR), 0.3)
    return (x / np.abs(x).max() * 0.9).astype(np.float32)


def _noise(seed):
    x = background(np.random.default_rng(seed), 16 * SR, 0.02)
    return (x / np.abs(x).max() * 0.9).astype(np.float32)


def _dropped(root, restored="0"):
    with open(root / "data" / "dropped" / "RIWH" / "dropped.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["restored"] == restored]


@pytest.mark.slow
def test_select_by_model_drops_a_planted_empty_window_and_keeps_a_restored_one(tmp_path):
    """Three classes of planted recordings (calls in bouts, a 6-s pause): the real embed (BirdNET),
    score and select stages. The pause's windows are dropped; a restored one stays."""
    classes = {"RIWH": {"name": "Rising Whistler", "sources": []}, "FACH": {"name": "Falling Chirper", "sources": []},
               "Noise": {"name": "Noise", "sources": []}}
    root = project(tmp_path, classes=classes, search={"queries": {}})
    for code, make in (("RIWH", planted), ("FACH", _chirps), ("Noise", _noise)):
        rec = root / "data" / "recordings" / code
        rec.mkdir(parents=True)
        for i in range(4):
            write_audio(rec / f"{code.lower()}{i}.wav", make(10 * i + len(code)), SR)
        extract_class(rec, root / "data" / "db" / f"{code}.db", root / "data" / "db" / f"{code}.report.csv",
                      classes[code]["name"], code, SpecSettings(), workers=1, show_progress=False)
        r = stage(root, "stages.embed", "--code", code, "embedder.progress=false", "embedder.threads=1")
        assert r.returncode == 0, r.stderr
    r = stage(root, "stages.score")
    assert r.returncode == 0, r.stderr
    assert "RIWH: 36 windows scored" in r.stdout and "Noise: 36 windows scored" in r.stdout, r.stdout
    r = stage(root, "stages.select", "--code", "RIWH", "select.progress=false")
    assert r.returncode == 0, r.stderr
    assert "unattended: keep score >= 0.5" in r.stdout, r.stdout
    dropped = {(x["file"], float(x["offset"])) for x in _dropped(root)}
    pause = {(f"riwh{i}.wav", o) for i in range(4) for o in (6.0, 7.5)}  # no call from 4.7 s to 11.0 s
    assert pause <= dropped, dropped
    with SpecDB(root / "data" / "select" / "RIWH.db") as db:
        kept = {(f, o) for f, offs in db.offsets().items() for o in offs}
    assert not pause & kept and {(f"riwh{i}.wav", 0.0) for i in range(4)} <= kept
    first = next(x for x in _dropped(root) if (x["file"], float(x["offset"])) in pause)
    restored = root / "data" / "curation" / "RIWH" / "restored"
    restored.mkdir(parents=True)
    shutil.copy(root / "data" / "dropped" / "RIWH" / first["image"], restored)
    r = stage(root, "stages.select", "--code", "RIWH", "select.progress=false")
    assert r.returncode == 0 and "1 restored by you" in r.stdout, r.stdout + r.stderr
    with SpecDB(root / "data" / "select" / "RIWH.db") as db:
        assert float(first["offset"]) in db.offsets()[first["file"]]
    assert first["image"] not in {x["image"] for x in _dropped(root)}
    assert [x["image"] for x in _dropped(root, restored="1")] == [first["image"]]  # still on the review page
