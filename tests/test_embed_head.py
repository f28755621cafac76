"""The embedding head on real BirdNET embeddings of a real training database: the training set carries
each window's vector, the head trains, saves, loads, infers the way it was trained, and joins an
ensemble with a CNN."""

import numpy as np
import pytest
import torch

from hawk.ckpt import load_checkpoint, save_checkpoint
from hawk.download.demo import synth_recording, write_audio
from hawk.embed import create_embedder
from hawk.embed.run import embed_class
from hawk.embed.store import vectors_by_window
from hawk.infer import Ensemble, EnsembleError, score_files
from hawk.models import create_model
from hawk.specset import SpecSet, SpecSetError, build_specset
from hawk.training.head import train_heads
from hawk.training.run import Tracking, TrainSettings, write_outputs
from tests.conftest import DEMO_CLASSES

CLASSES = [(name, code) for name, code, _ in DEMO_CLASSES]


@pytest.fixture(scope="module")
def project(train_db, tmp_path_factory):
    """Every class embedded by BirdNET and a training set with the vectors."""
    root = train_db.parent
    out = tmp_path_factory.mktemp("head")
    birdnet = create_embedder("birdnet", threads=1)
    by_code = {}
    for _, code in CLASSES:
        emb = out / f"{code}.npz"
        embed_class(root / f"{code}.db", root / "recordings" / code, birdnet, emb, out / f"{code}.csv", code,
                    show_progress=False)
        by_code[code], _ = vectors_by_window(root / f"{code}.db", emb)
    desc = {"config": {"name": "birdnet", "threads": 1, "batch_size": 1}, "identity": birdnet.identity()}
    build_specset(train_db, CLASSES, out / "specs", show_progress=False, vectors=(by_code, desc))
    return out, by_code, birdnet


@pytest.fixture(scope="module")
def trained(project, tmp_path_factory):
    out, _, _ = project
    d = tmp_path_factory.mktemp("headrun")
    tracking = Tracking(mlflow_uri=f"sqlite:///{d}/mlflow.db", tensorboard_dir=str(d / "logs"))
    s = TrainSettings(model_name="embed_head", val_portion=0.25)
    return train_heads(out / "specs", s, tracking, d / "ckpt"), tracking, d


def test_training_set_carries_each_windows_embedding(project, train_db, tmp_path):
    out, by_code, _ = project
    ss = SpecSet.open(out / "specs")
    x = ss.vectors()
    assert x.shape == (len(ss), 1024) and ss.meta["vectors_missing"] == 0
    for i in (0, len(ss) // 2, len(ss) - 1):
        row = ss.rows[i]
        assert np.array_equal(x[i], by_code[row["code"]][(row["file"], float(row["offset"]))])
    assert ss.meta["embedder"]["identity"] == {"name": "birdnet", "version": "2.4", "dim": 1024}
    build_specset(train_db, CLASSES, tmp_path / "plain", show_progress=False)
    with pytest.raises(SpecSetError, match="no embeddings.*embed_head"):
        SpecSet.open(tmp_path / "plain").vectors()


def test_head_trains_saves_and_is_tracked(trained, project):
    results, tracking, d = trained
    (r,) = results
    assert r.model == "embed_head" and r.checkpoints == [d / "ckpt" / "embed_head.ckpt"]
    assert r.epochs[-1]["val_macro_ap"] > 0.9  # whistles, chirps and noise are easy for BirdNET
    assert r.epochs[-1]["train_loss"] < r.epochs[0]["train_loss"]
    ckpt = load_checkpoint(r.checkpoints[0])
    assert ckpt["model_name"] == "embed_head" and ckpt["extra"]["head"] == {"in_dim": 1024, "hidden": 512, "dropout": 0.3}
    assert ckpt["extra"]["embedder"]["config"]["name"] == "birdnet"
    assert set(ckpt["extra"]["calibration"]) == {"a", "b"}
    summary = write_outputs(results, d / "train.json", d / "epochs.csv", d / "curves.png", tracking)
    assert summary["val_macro_ap"] == r.epochs[-1]["val_macro_ap"]
    import mlflow

    run = mlflow.MlflowClient(tracking.mlflow_uri).get_run(r.run_id)
    assert run.data.metrics["val_macro_ap"] == pytest.approx(r.epochs[-1]["val_macro_ap"])
    assert run.data.params["train_spectrograms"] == str(r.samples // 300)
    # validated on a quarter, then trained again on every window with the validation's calibration
    assert run.data.params["refit_spectrograms"] == str(len(SpecSet.open(project[0] / "specs")))


def test_head_infers_as_it_was_trained(trained, project, train_db, tmp_path):
    results, _, _ = trained
    _, by_code, birdnet = project
    ens = Ensemble.load(results[0].checkpoints[0], "cpu")
    assert ens.members == 1 and not ens.models and ens.embedder.identity() == birdnet.identity()
    # the segments infer embeds are the vectors the embed stage stored for training
    rec = sorted((train_db.parent / "recordings" / "RIWH").iterdir())[0]
    stored = {o: v for (f, o), v in by_code["RIWH"].items() if f == rec.name}
    offsets = sorted(stored)
    assert np.allclose(ens.embedder.embed_file(rec, offsets, batch_size=2), np.stack([stored[o] for o in offsets]),
                       atol=1e-5)
    # a part of a long recording (engine=ray scores those in parts) embeds as the whole recording does
    write_audio(tmp_path / "long" / "long.flac", synth_recording("whistle", 8, 30.0, 44100), 44100)
    offsets = [k * 1.5 for k in range(19)]
    whole = ens.embedder.embed_file(tmp_path / "long" / "long.flac", offsets)
    assert np.allclose(ens.embedder.embed_file(tmp_path / "long" / "long.flac", offsets[10:]), whole[10:], atol=1e-5)
    write_audio(tmp_path / "whistle.wav", synth_recording("whistle", 7, 9.0, 44100), 44100)
    write_audio(tmp_path / "chirp.flac", synth_recording("chirp", 7, 9.0, 32000), 32000)
    run = score_files(sorted(p for p in tmp_path.iterdir() if p.is_file()), ens, overlap=1.5)
    got = {f.path.name: f.scores.mean(axis=0) for f in run.files}
    assert got["whistle.wav"].argmax() == ens.codes.index("RIWH")
    assert got["chirp.flac"].argmax() == ens.codes.index("FACH")


def test_head_joins_an_ensemble_with_a_cnn(trained, tmp_path):
    results, _, _ = trained
    (tmp_path / "embed_head.ckpt").write_bytes(results[0].checkpoints[0].read_bytes())
    torch.manual_seed(0)
    settings = load_checkpoint(results[0].checkpoints[0])["spec_settings"]  # the training set's
    save_checkpoint(tmp_path / "cnn.ckpt", "custom_hgnet_1", create_model("custom_hgnet_1", 3), CLASSES, settings)
    write_audio(tmp_path / "rec.wav", synth_recording("chirp", 3, 6.0, 32000), 32000)
    run = score_files([tmp_path / "rec.wav"], Ensemble.load(tmp_path, "cpu"), overlap=0)
    singles = [score_files([tmp_path / "rec.wav"], Ensemble.load(tmp_path / n, "cpu"), overlap=0).files[0].scores
               for n in ("cnn.ckpt", "embed_head.ckpt")]
    assert np.allclose(run.files[0].scores, (singles[0] + singles[1]) / 2, atol=1e-5)


def test_a_head_from_another_embedder_is_refused(trained, tmp_path):
    results, _, _ = trained
    ckpt = load_checkpoint(results[0].checkpoints[0])
    ckpt["extra"]["embedder"]["identity"]["version"] = "3.0"
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.raises(EnsembleError, match=r"old.ckpt.*trained on .*3\.0.* embeddings"):
        Ensemble.load(tmp_path / "old.ckpt", "cpu")


def test_heads_from_two_embedders_are_not_ensembled(trained, tmp_path):
    results, _, _ = trained
    (tmp_path / "a.ckpt").write_bytes(results[0].checkpoints[0].read_bytes())
    ckpt = load_checkpoint(results[0].checkpoints[0])
    ckpt["extra"]["embedder"]["config"]["threads"] = 7  # other options alone do not matter
    torch.save(ckpt, tmp_path / "b.ckpt")
    assert Ensemble.load(tmp_path, "cpu").members == 2
    ckpt["extra"]["embedder"]["identity"]["version"] = "3.0"
    torch.save(ckpt, tmp_path / "b.ckpt")
    with pytest.raises(EnsembleError, match=r"embedding heads cannot be ensembled: .*a\.ckpt made by .*b\.ckpt made by"):
        Ensemble.load(tmp_path, "cpu")


def test_calibration_is_folded_into_the_head_and_keeps_its_ranking():
    """Platt scaling on the validation rows, folded into the last layer: held-out scores fit the
    truth better (lower log loss) and every class's ranking stays as trained."""
    from hawk.embed_head import HeadSettings, train_head

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16))
    labels = np.repeat(np.arange(3), 80)
    x = (centres[labels] + rng.standard_normal((240, 16)) * 1.5).astype(np.float32)
    train_idx, val_idx = np.flatnonzero(np.arange(240) % 4), np.flatnonzero(np.arange(240) % 4 == 0)
    weights = np.ones(3, np.float32)
    plain = train_head(x, labels, train_idx, val_idx, 3, weights, HeadSettings(calibrate=False))
    scaled = train_head(x, labels, train_idx, val_idx, 3, weights, HeadSettings())
    assert plain.calibration is None and set(scaled.calibration) == {"a", "b"}
    with torch.no_grad():
        before, after = (torch.sigmoid(r.model(torch.from_numpy(x[val_idx]))).numpy().astype(np.float64)
                         for r in (plain, scaled))
    truth = np.eye(3)[labels[val_idx]]

    def log_loss(p):
        return -np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p))

    assert log_loss(after) < log_loss(before) - 0.01
    assert (np.argsort(before, axis=0) == np.argsort(after, axis=0)).all()  # a monotone map per class


def test_the_cnn_distils_from_heads_that_never_saw_the_windows_recording(project, tmp_path):
    """train.distill: each window's teacher score comes from a head trained on the other recordings,
    and the CNN trains on (1 - distill) x label + distill x teacher; validation rows keep their labels."""
    from hawk.embed_head import HeadSettings
    from hawk.training.distill import teacher_scores
    from hawk.training.run import TrainerSettings, _targets, train

    out, _, _ = project
    ss = SpecSet.open(out / "specs")
    x, labels, k = ss.vectors(), ss.labels, len(ss.class_codes)
    settings = HeadSettings(hidden=0, steps=100)
    teacher = teacher_scores(x, labels, ss.groups, k, np.ones(k, np.float32), settings)
    assert teacher.shape == (len(ss), k) and ((teacher >= 0) & (teacher <= 1)).all()
    assert (teacher.argmax(1) == labels).mean() > 0.9  # whistles, chirps and noise are easy for BirdNET
    # relabel one recording: its own scores keep their order (only the shared calibration moves them),
    # while the heads of the other folds, which trained on it, now score the other windows differently
    rows = [i for i, g in enumerate(ss.groups) if g == ss.groups[0]]
    flipped = labels.copy()
    flipped[rows] = (labels[rows] + 1) % k
    again = teacher_scores(x, flipped, ss.groups, k, np.ones(k, np.float32), settings)
    assert np.array_equal(np.argsort(teacher[rows].ravel(), kind="stable"), np.argsort(again[rows].ravel(), kind="stable"))
    others = np.setdiff1d(np.arange(len(ss)), rows)
    assert not np.allclose(teacher[others], again[others], atol=1e-3)

    s = TrainSettings(model_name="custom_hgnet_1", num_epochs=1, batch_size=16, num_workers=0, val_portion=0.25,
                      save_last_n=1, distill=0.5, head=settings)
    assert _targets(ss, np.arange(len(ss)), TrainSettings(distill=0.0), np.ones(k)) is None
    train_rows = np.arange(0, len(ss), 2)
    soft = _targets(ss, train_rows, s, np.ones(k, np.float32))
    hard = np.eye(k)[labels]
    assert np.array_equal(soft[1::2], hard[1::2]) and not np.allclose(soft[train_rows], hard[train_rows])
    off_label = soft[train_rows].copy()
    off_label[np.arange(len(train_rows)), labels[train_rows]] = 0
    assert off_label.max() > 0  # the teacher's other classes reach the targets (the demo's are clear-cut)
    tracking = Tracking(mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db", tensorboard_dir=str(tmp_path / "logs"))
    (r,) = train(out / "specs", s, TrainerSettings(accelerator="cpu", devices=1, progress=False, limit_train_batches=2),
                 tracking, tmp_path / "ckpt")
    assert load_checkpoint(r.checkpoints[-1])["extra"]["train"]["distill"] == 0.5


def test_a_persons_no_becomes_a_negative_of_its_class_in_the_training_set(project, train_db, tmp_path):
    """A rejected image of a class's window and a rejected field clip are read back as vectors of that
    class (the window's own embedding; the clip embedded by the same BirdNET), stored in the training
    set, and the head trains on them."""
    import soundfile as sf

    from hawk.audio import read_clip
    from hawk.db import SpecDB
    from hawk.negatives import CURATION, FIELD, collect_negatives
    from hawk.plot import image_name

    out, by_code, birdnet = project
    code = CLASSES[0][1]
    with SpecDB(train_db.parent / f"{code}.db") as db:
        stored = {code: db.offsets()}
    f, o = sorted((k for k in by_code[code]), key=lambda k: (k[0], k[1]))[1]
    (tmp_path / "curation" / code / "rejected").mkdir(parents=True)
    (tmp_path / "curation" / code / "rejected" / image_name(f, o)).write_bytes(b"")  # the page's copy
    clips = tmp_path / "field" / code / "rejected"
    clips.mkdir(parents=True)
    rec = train_db.parent / "recordings" / CLASSES[1][1] / sorted(by_code[CLASSES[1][1]])[0][0]
    sf.write(clips / "site1-4.50.wav", read_clip(rec, 48000, 4.5, 3.0), 48000)
    calls = []

    def embed(paths):
        calls.append(paths)
        return [birdnet.embed_file(p, [0.0])[0] for p in paths]

    neg = collect_negatives([c for _, c in CLASSES], tmp_path / "curation", tmp_path / "field", stored, by_code,
                            1024, embed)
    assert (neg.codes, neg.files, neg.offsets, neg.origins) == ([code, code], [f, "site1"], [o, 4.5], [CURATION, FIELD])
    assert len(calls) == 1 and np.array_equal(neg.vectors[0], by_code[code][(f, o)])
    assert np.allclose(neg.vectors[1], birdnet.embed_file(clips / "site1-4.50.wav", [0.0])[0])
    desc = {"config": {"name": "birdnet"}, "identity": birdnet.identity()}
    meta = build_specset(train_db, CLASSES, tmp_path / "specs", show_progress=False, vectors=(by_code, desc),
                         negatives=neg)
    assert meta["negatives"] == {code: 2}
    back = SpecSet.open(tmp_path / "specs").negatives()
    assert back.codes == neg.codes and np.array_equal(back.vectors, neg.vectors)
    assert SpecSet.open(out / "specs").negatives() is None  # a set made without verdicts
    d = tmp_path / "run"
    tracking = Tracking(mlflow_uri=f"sqlite:///{d}/mlflow.db", tensorboard_dir=str(d / "logs"))
    (r,) = train_heads(tmp_path / "specs", TrainSettings(model_name="embed_head", val_portion=0.25), tracking, d / "ckpt")
    import mlflow

    assert mlflow.MlflowClient(tracking.mlflow_uri).get_run(r.run_id).data.params["negatives_said_no"] == "2"


def test_windows_curation_by_the_model_dropped_are_negatives_unless_a_person_restored_or_rejected_them(
        project, train_db, tmp_path):
    """select's dropped.csv (judged by score) gives the model's negatives; a restored drop is a yes, a
    rejected one is the person's no (counted once, as theirs), and drops judged by activity are not the
    model's judgement. The head weighs the model's rows dropped_weight, a person's verdict_weight."""
    from hawk.db import SpecDB
    from hawk.embed_head import Verdicts
    from hawk.negatives import CURATION, DROPPED, collect_negatives
    from hawk.plot import image_name, write_dropped
    from hawk.spectrogram import SpecSettings

    _, by_code, _ = project
    code, other = CLASSES[0][1], CLASSES[1][1]
    with SpecDB(train_db.parent / f"{code}.db") as db:
        stored = {code: db.offsets()}
    (a, b, c, d) = sorted(by_code[code])[:4]
    write_dropped(tmp_path / "dropped" / code, [(*a, 0.1), (*b, 0.2)], train_db.parent / f"{code}.db", SpecSettings(),
                  "score", overruled=[(*c, 0.3)])
    (e,) = sorted(by_code[other])[:1]
    write_dropped(tmp_path / "dropped" / other, [(*e, -60.0)], train_db.parent / f"{other}.db", SpecSettings(),
                  "activity_db")
    (tmp_path / "curation" / code / "rejected").mkdir(parents=True)
    (tmp_path / "curation" / code / "rejected" / image_name(*b)).write_bytes(b"")
    (tmp_path / "curation" / code / "rejected" / image_name(*d)).write_bytes(b"")
    neg = collect_negatives([code, other], tmp_path / "curation", tmp_path / "field", stored, by_code, 1024, None,
                            dropped=tmp_path / "dropped")
    got = sorted(zip(neg.files, neg.offsets, neg.origins))
    assert got == sorted([(*b, CURATION), (*d, CURATION), (*a, DROPPED)])
    assert neg.counts((DROPPED,)) == {code: 1} and neg.counts((CURATION,)) == {code: 2}
    i = neg.origins.index(DROPPED)
    assert np.array_equal(neg.vectors[i], by_code[code][a])
    verdicts = Verdicts(np.ones(3, bool), np.zeros(3, bool), np.array([False, True, False]))
    _, mask = verdicts.apply(torch.ones(3, 2), torch.ones(3, 2), np.array([0, 1, 0]), 3.0, 0.5)
    assert mask.tolist() == [[3.0, 0.0], [0.0, 0.5], [3.0, 0.0]]


def test_a_no_teaches_its_own_class_only():
    """Rows a person said no to (for class 0) pull class 0's score down where they lie, and leave the
    other class's column as it was: a "no, not this class" says nothing about the others. A confirmed
    field row (own class only) is a positive of its class and no negative of the others."""
    from hawk.embed_head import HeadSettings, Verdicts, train_head

    rng = np.random.default_rng(0)
    centre = rng.normal(size=(2, 16)) * 3
    x = np.concatenate([centre[k] + rng.normal(size=(40, 16)) for k in (0, 1)])
    labels = np.repeat([0, 1], 40)
    near = (centre[0] + centre[1]) / 2 + rng.normal(size=(20, 16)) * 0.5  # between the two classes
    s = HeadSettings(hidden=0, dropout=0.0, calibrate=False, steps=200)
    w = np.ones(2, np.float32)

    def scores(extra_labels, verdicts):
        xx = np.concatenate([x, near]) if verdicts is not None else x
        ll = np.concatenate([labels, extra_labels]) if verdicts is not None else labels
        idx = np.arange(len(xx))
        model = train_head(xx, ll, idx, idx[:0], 2, w, s, verdicts=verdicts).model
        with torch.no_grad():
            return torch.sigmoid(model(torch.tensor(near, dtype=torch.float32))).numpy()

    n, m = len(x), len(near)
    plain = scores(None, None)
    said_no = scores(np.zeros(m, np.int64), Verdicts(np.arange(n + m) >= n, np.zeros(n + m, bool)))
    assert said_no[:, 0].mean() < plain[:, 0].mean() - 0.2
    assert np.abs(said_no[:, 1] - plain[:, 1]).max() < 0.05  # the other column barely moves
    # as plain labels of class 0 the same rows would also teach class 1 that they are not class 1
    own_only = scores(np.zeros(m, np.int64), Verdicts(np.zeros(n + m, bool), np.arange(n + m) >= n))
    assert own_only[:, 0].mean() > plain[:, 0].mean() + 0.2
    assert np.abs(own_only[:, 1] - plain[:, 1]).max() < 0.05
