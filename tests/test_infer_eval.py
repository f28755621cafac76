"""Inference and testing: ensembles and their class-list checks, label formats, calibration, bad and empty
files, and a tester that gives AP 1.0 on perfect scores and chance on shuffled ones."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hawk.ckpt import save_checkpoint
from hawk.download.demo import make_soundscapes, synth_recording, write_audio, write_annotations
from hawk.evaluate import AnnotationError, build_table, compute_metrics, fit_platt, match_annotations, read_annotations
from hawk.audio import AudioError
from hawk.infer import (Ensemble, EnsembleError, FileScores, calibrate, file_segments, find_recordings, iter_scores,
                        iter_segments, recordings_root, score_files, segment_settings)
from hawk.labels import make_labels, read_audacity, read_raven, write_audacity, write_raven
from hawk.models import create_model
from hawk.spectrogram import SpecSettings

CLASSES = [("Rising Whistler", "RIWH"), ("Falling Chirper", "FACH"), ("Noise", "Noise")]


def ckpt(path, classes=CLASSES, seed=0):
    torch.manual_seed(seed)
    return save_checkpoint(path, "custom_hgnet_1", create_model("custom_hgnet_1", len(classes)), classes,
                           SpecSettings().to_dict())


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    ckpt(d / "a.ckpt", seed=1)
    ckpt(d / "b.ckpt", seed=2)
    return d


def test_ensemble_averages_its_models(ensemble_dir):
    ens = Ensemble.load(ensemble_dir, "cpu")
    x = np.random.default_rng(0).integers(0, 255, (5, 192, 384), dtype=np.uint8)
    singles = [Ensemble.load(ensemble_dir / n, "cpu").scores(x) for n in ("a.ckpt", "b.ckpt")]
    assert np.allclose(ens.scores(x), (singles[0] + singles[1]) / 2, atol=1e-6)
    assert ens.codes == ["RIWH", "FACH", "Noise"]


def test_ensembles_refuse_mixed_class_lists(ensemble_dir, tmp_path):
    for p in ensemble_dir.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    ckpt(tmp_path / "c.ckpt", [("Rising Whistler", "RIWH"), ("Noise", "Noise")])
    with pytest.raises(EnsembleError, match="c.ckpt.*different class lists|different class lists.*c.ckpt"):
        Ensemble.load(tmp_path, "cpu")
    with pytest.raises(EnsembleError, match="no checkpoints"):
        Ensemble.load(tmp_path / "empty", "cpu")


@pytest.mark.parametrize("seconds", [0.5, 3.0, 4.4, 4.6, 7.31, 12.0])
@pytest.mark.parametrize("overlap", [0.0, 1.5, 2.0])
def test_heads_alone_get_the_offsets_the_spectrograms_have(tmp_path, seconds, overlap):
    # an ensemble of embedding heads skips the spectrograms; its segments must be the CNN's
    settings = segment_settings(SpecSettings(), overlap)
    path = tmp_path / "rec.flac"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, int(seconds * 44100)).astype(np.float32), 44100)
    full, bare = file_segments(str(path), settings), file_segments(str(path), settings, spectrograms=False)
    assert np.allclose(full["offsets"], bare["offsets"]) and len(full["offsets"]) == len(full["specs"])
    assert bare["seconds"] == full["seconds"] and bare["specs"].shape == (0, *full["specs"].shape[1:])


@pytest.mark.parametrize("ext, sr, channels", [(".flac", 44100, 2), (".wav", 37120, 1), (".mp3", 32000, 1),
                                               (".m4a", 44100, 1), (".ogg", 11025, 1)])
@pytest.mark.parametrize("spectrograms", [True, False])
def test_a_recording_scored_in_parts_equals_it_scored_whole(tmp_path, ext, sr, channels, spectrograms):
    # engine=ray scores a long recording in parts on many workers; joined, they must be the whole call's
    # result (11025 Hz: a part's start falls between the file's samples, so it is decoded from the start)
    settings = segment_settings(SpecSettings(), 1.5)
    signal = synth_recording("warble", 3, 47.3, sr)
    if channels == 2:  # the second channel is the cleaner one: every part must pick it, as the whole call does
        signal = np.stack([signal + np.random.default_rng(1).normal(0, 0.3, len(signal)), signal], 1)
    path = tmp_path / f"long{ext}"
    write_audio(path, signal.astype(np.float32), sr)
    whole = file_segments(str(path), settings, spectrograms)
    n = len(whole["offsets"])
    parts = [file_segments(str(path), settings, spectrograms, k, 8 if k + 8 < n else None) for k in range(0, n, 8)]
    parts.append(file_segments(str(path), settings, spectrograms, n + 8, 8))  # past the end: empty, no error
    assert all("error" not in p for p in parts) and [p["end"] for p in parts][-2:] == [True, True]
    assert np.array_equal(np.concatenate([p["offsets"] for p in parts]), whole["offsets"])
    assert max(p["seconds"] or 0 for p in parts) == pytest.approx(whole["seconds"])
    joined = np.concatenate([p["specs"] for p in parts]).astype(int)
    assert joined.shape == whole["specs"].shape and np.abs(joined - whole["specs"]).max(initial=0) <= 1  # uint8 rounding
    assert not parts[0]["end"] and parts[-1]["seconds"] is None and len(parts[-1]["offsets"]) == 0


def test_scoring_survives_bad_and_empty_files(ensemble_dir, tmp_path):
    write_audio(tmp_path / "good.flac", synth_recording("whistle", 0, 7.0, 32000), 32000)
    write_audio(tmp_path / "short.wav", synth_recording("chirp", 0, 1.0, 32000), 32000)
    (tmp_path / "bad.mp3").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "header_only.wav", np.zeros(0, "float32"), 16000)
    (tmp_path / "sub").mkdir()
    write_audio(tmp_path / "sub" / "deep.ogg", synth_recording("chirp", 1, 4.0, 48000), 48000)
    files = find_recordings(tmp_path)
    run = score_files(files, Ensemble.load(ensemble_dir, "cpu"), overlap=1.5)
    scored = {f.path.name: f for f in run.files}
    assert set(scored) == {"good.flac", "short.wav", "deep.ogg"}
    assert {p.rsplit("/", 1)[-1] for p, _ in run.skipped} == {"bad.mp3", "empty.wav", "header_only.wav"}
    assert scored["good.flac"].offsets.tolist() == [0.0, 1.5, 3.0, 4.5]  # the 7 s end is padded into a segment
    assert scored["short.wav"].offsets.tolist() == [0.0]


def test_short_recordings_share_the_networks_batches_and_keep_their_own_scores(ensemble_dir, tmp_path):
    """Consecutive files fill one batch (a one-minute file alone would make a batch of 39); each file
    still gets exactly the scores it gets scored alone, in order, a bad file among them reported in place."""
    names = []
    for i in range(5):
        names.append(tmp_path / f"r{i}.flac")
        write_audio(names[-1], synth_recording(("whistle", "chirp")[i % 2], i, 9.0, 32000), 32000)  # 5 windows each
    (tmp_path / "r2b.mp3").write_text("not audio")
    names.insert(3, tmp_path / "r2b.mp3")
    ens = Ensemble.load(ensemble_dir, "cpu", "torch")
    alone = {f: score_files([f], ens, overlap=1.5).files[0].scores for f in names if f.suffix == ".flac"}
    calls = []
    for k, model in enumerate(list(ens.models)):
        def counted(x, model=model, k=k):
            calls.append((k, len(x)))
            return model(x)
        ens.models[k] = counted
    out = list(iter_scores(names, ens, overlap=1.5, batch_size=16, prefetch=0))
    assert [o.path if isinstance(o, FileScores) else Path(o[0]) for o in out] == names
    assert isinstance(out[3], tuple) and "r2b.mp3" in out[3][0]
    for o in out:
        if isinstance(o, FileScores):
            assert np.abs(o.scores - alone[o.path]).max() <= 1e-6
    assert sorted(n for k, n in calls if k == 0) == [9, 16]  # 25 windows in batches of 16 across files, not 5 x 5


def test_the_local_engine_scores_a_long_recording_in_parts_as_it_scores_it_whole(ensemble_dir, tmp_path):
    """The windows held stay bounded on recordings of any length: no result of the decoder holds more than a part's
    windows, and the parts, joined, are the recording scored whole (a bad file among them in place)."""
    long, short, bad = tmp_path / "long.flac", tmp_path / "short.flac", tmp_path / "bad.mp3"
    write_audio(long, synth_recording("warble", 5, 61.0, 44100), 44100)
    write_audio(short, synth_recording("chirp", 1, 9.0, 32000), 32000)
    bad.write_text("not audio")
    ens = Ensemble.load(ensemble_dir, "cpu", "torch")
    sizes = [len(r["offsets"]) for r in iter_segments([long], segment_settings(ens.settings, 1.5), part_seconds=12)]
    assert sizes == [8] * 5  # 40 windows, 12 s parts at 1.5 s steps
    whole = list(iter_scores([long, bad, short], ens, 1.5, batch_size=16, part_seconds=None))
    parts = list(iter_scores([long, bad, short], ens, 1.5, batch_size=16, part_seconds=12))
    assert [type(o) for o in parts] == [FileScores, tuple, FileScores] and parts[1][0] == str(bad)
    for w, p in zip(whole[::2], parts[::2]):
        assert p.path == w.path and np.array_equal(p.offsets, w.offsets) and p.seconds == pytest.approx(w.seconds)
        assert np.abs(p.scores - w.scores).max() <= 1e-5


def test_labels_merge_ignore_and_round_trip(tmp_path):
    offsets = np.array([0.0, 1.5, 3.0, 4.5, 6.0])
    scores = np.array([[0.9, 0.1, 0.95], [0.85, 0.2, 0.9], [0.1, 0.1, 0.9], [0.95, 0.81, 0.9], [0.2, 0.3, 0.9]])
    labels = make_labels(offsets, scores, CLASSES, 3.0, min_score=0.8, merge=True, duration=7.2)
    assert [(lb.code, lb.start, lb.end, lb.score) for lb in labels] == [
        ("RIWH", 0.0, 7.2, 0.95), ("FACH", 4.5, 7.2, 0.81)]  # touching RIWH labels merge; end clipped
    unmerged = make_labels(offsets, scores, CLASSES, 3.0, min_score=0.8, merge=False)
    assert len(unmerged) == 4 and all(lb.code != "Noise" for lb in unmerged)
    write_audacity(tmp_path / "x_hawk.txt", labels)
    assert read_audacity(tmp_path / "x_hawk.txt") == [(lb.start, lb.end, lb.code, round(lb.score, 3)) for lb in labels]
    assert (tmp_path / "x_hawk.txt").read_text().splitlines()[0] == "0.00\t7.20\tRIWH;0.950"
    write_raven(tmp_path / "x.selections.txt", labels, 200, 13000)
    rows = read_raven(tmp_path / "x.selections.txt")
    assert [(float(r["Begin Time (s)"]), r["Species Code"], r["Common Name"]) for r in rows] == [
        (lb.start, lb.code, lb.name) for lb in labels]


def test_platt_fit_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    truth = rng.random(z.shape) < 1 / (1 + np.exp(-z))  # calibrated on z
    scores = 1 / (1 + np.exp(-(2 * z - 1)))  # overconfident and shifted
    fit = fit_platt(scores[:, None], truth[:, None].astype(float))
    assert fit["a"] == pytest.approx(0.5, abs=0.05) and fit["b"] == pytest.approx(0.5, abs=0.1)
    assert np.allclose(calibrate(scores.astype(np.float32), fit["a"], fit["b"]), 1 / (1 + np.exp(-z)), atol=0.05)


def test_platt_calibration():
    s = np.array([0.1, 0.5, 0.9], np.float32)
    assert np.array_equal(calibrate(s), s)
    assert np.allclose(calibrate(s, 2.0, 0.0), [1 / (1 + 81), 0.5, 81 / 82], atol=1e-6)
    assert calibrate(s, 1.0, 1.0)[1] == pytest.approx(1 / (1 + np.exp(-1)))


def test_tester_perfect_and_shuffled_scores(tmp_path):
    calls = {"RIWH": "whistle", "FACH": "chirp"}
    ann = make_soundscapes(tmp_path, calls, 6, seed=3, seconds=60.0)
    write_annotations(tmp_path / "annotations.csv", ann)
    kind, rows = read_annotations(tmp_path / "annotations.csv")
    assert kind == "per_sound"
    codes = ["RIWH", "FACH", "Noise"]
    files = [FileScores(p, np.arange(0, 57.01, 3.0), np.zeros((20, 3), np.float32), 60.0)
             for p in sorted(tmp_path.glob("*.flac"))]
    truth = build_table(kind, rows, files, codes, 3.0).truth
    for f, k in zip(files, range(len(files))):
        f.scores = truth[k * 20 : (k + 1) * 20].copy()  # perfect scores
    perfect = build_table(kind, rows, files, codes, 3.0)
    m = compute_metrics(perfect.scores, perfect.truth, [0, 1], 0.5)
    assert m["macro_ap"] == 1.0 and m["micro_ap"] == 1.0 and m["precision"] == 1.0 and m["recall"] == 1.0
    rng = np.random.default_rng(0)
    aps = []
    for _ in range(20):
        shuffled = rng.random(perfect.truth.shape)
        aps.append(compute_metrics(shuffled, perfect.truth, [0, 1], 0.5)["micro_ap"])
    prevalence = perfect.truth[:, :2].mean()
    assert abs(np.mean(aps) - prevalence) < 0.08  # chance level
    per_rec = build_table("per_recording", [{"recording": r["recording"], "species": r["species"]} for r in rows],
                          files, codes, 3.0)
    assert per_rec.truth.shape == (6, 3) and per_rec.scores.max() == 1.0
    per_min = build_table("per_minute", [{"recording": r["recording"], "minute": "0", "species": r["species"]}
                                         for r in rows], files, codes, 3.0)
    assert per_min.truth.shape == (6, 3) and np.array_equal(per_min.truth, per_rec.truth)  # one-minute files


# --- bad annotations (issue 10) --------------------------------------------------------------------

def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("recording,species,start_time\nS1,RIWH,1.0\n",
     "per-sound annotations need both start_time and end_time; end_time is missing"),
    ("recording,species,start_time,end_time\nS1,RIWH,1.0,2.0\nS1,FACH,5.0,4.0\n",
     "line 3: end_time 4.0 is not after start_time 5.0"),
    ("recording,species,start_time,end_time\nS1,RIWH,1.0,2.0\nS1,RIWH,1.5s,2\n",
     "line 3: start_time '1.5s' / end_time '2': not a number"),
    ("recording,species,start_time,end_time\nS1,,1.0,2.0\n", "line 2: empty species"),
    ("recording,minute,species\nS1,one,RIWH\n", "line 2: minute 'one' is not a whole number"),
    ("file,label\nS1,RIWH\n", "match no annotation format"),
])
def test_bad_annotations_name_file_line_and_reason(tmp_path, text, message):
    path = _write(tmp_path / "ann.csv", text)
    with pytest.raises(AnnotationError) as e:
        read_annotations(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_unknown_recordings_and_codes_are_reported(tmp_path):
    path = _write(tmp_path / "ann.csv", "recording,species,start_time,end_time\n"
                  "S1,RIWH,1,2\nS2,RIWH,1,2\nS1,XXXX,3,4\nS1.flac,FACH,5,6\n")
    kind, rows = read_annotations(path)
    matched, unmatched = match_annotations(path, rows, [Path("/t/S1.flac")], ["RIWH", "FACH"])
    assert [r["line"] for r in matched] == ["2", "5"]
    assert [(u["line"], u["reason"]) for u in unmatched] == [("3", "unknown recording"), ("4", "unknown class code")]
    with pytest.raises(AnnotationError, match="none of its 4 rows"):
        match_annotations(path, rows, [Path("/t/OTHER.flac")], ["RIWH"])


def test_recordings_come_from_a_folder_a_glob_or_a_file_list(tmp_path):
    for name in ("a/x.wav", "a/b/y.flac", "z.mp3"):
        write_audio(tmp_path / name, synth_recording("chirp", 0, 3.0, 16000), 16000)
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    every = sorted([tmp_path / "a/x.wav", tmp_path / "a/b/y.flac", tmp_path / "z.mp3"])
    assert find_recordings(tmp_path) == every
    assert find_recordings(f"{tmp_path}/a/**/*") == every[:2]
    (tmp_path / "list.csv").write_text(f"path,site\na/x.wav,1\n{tmp_path / 'z.mp3'},2\n")
    assert find_recordings(tmp_path / "list.csv") == [tmp_path / "a/x.wav", tmp_path / "z.mp3"]
    (tmp_path / "bare.csv").write_text("a/b/y.flac\n")
    assert find_recordings(tmp_path / "bare.csv") == [tmp_path / "a/b/y.flac"]
    assert recordings_root(f"{tmp_path}/a/**/*", every[:2]) == tmp_path / "a"
    (tmp_path / "bad.csv").write_text("path\nmissing.wav\n")
    with pytest.raises(AudioError, match="bad.csv.*1 listed recording.*missing.wav"):
        find_recordings(tmp_path / "bad.csv")
    with pytest.raises(AudioError, match="matches no recordings"):
        find_recordings(f"{tmp_path}/*.ogg")
