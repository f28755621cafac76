"""pickle and train: the training-set format, splits by recording, augmentation, Lightning training with
checkpoints, MLflow and TensorBoard, determinism, transfer learning, DDP on two CPU processes."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hawk.augment import AugmentSettings, Augmenter
from hawk.ckpt import load_checkpoint
from hawk.db import SpecDB
from hawk.specset import SpecSet, SpecSetError, build_specset, field_clips
from hawk.spectrogram import decode
from hawk.training.data import SpecDataset, make_splits
from hawk.training.run import Tracking, TrainerSettings, TrainSettings, train, write_outputs
from tests import procs
from tests.conftest import DEMO_CLASSES, ROOT

CLASSES = [(name, code) for name, code, _ in DEMO_CLASSES]


@pytest.fixture(scope="module")
def specset(train_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("specs") / "specs"
    build_specset(train_db, CLASSES, out, show_progress=False)
    return out


def tiny(**kw) -> TrainSettings:
    base = dict(model_name="custom_hgnet_1", num_epochs=2, batch_size=16, num_workers=0, val_portion=0.25,
                save_last_n=2, average=False)
    return TrainSettings(**{**base, **kw})


def run(specset, tmp_path, s, **trainer):
    tracking = Tracking(mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db", tensorboard_dir=str(tmp_path / "logs"))
    t = TrainerSettings(accelerator="cpu", devices=1, progress=False, **trainer)
    return train(specset, s, t, tracking, tmp_path / "ckpt"), tracking


def test_pickle_format_runs_no_code_and_keeps_provenance(specset, train_db):
    ss = SpecSet.open(specset)
    assert ss.class_codes == ["RIWH", "FACH", "Noise"]
    with SpecDB(train_db) as db:
        first = {(r.filename, r.offset): r.value for r in db.spectrograms()}
    arr = np.load(specset / "specs.npy", mmap_mode="r", allow_pickle=False)  # a plain array file
    assert arr.shape == (len(ss), 192, 384) and arr.dtype == np.uint8
    for i in (0, len(ss) // 2, len(ss) - 1):
        row = ss.rows[i]
        assert set(row) >= {"recording_id", "offset", "code", "source", "group"}
        want = decode(first[(row["file"], float(row["offset"]))])
        assert np.allclose(ss.read(i) / 255, want, atol=1 / 255 + 1e-6)
    meta = json.loads((specset / "meta.json").read_text())
    assert len(meta["data"]["train_db_sha256"]) == 64


def test_pickle_caps_classes_and_names_empty_ones(train_db, tmp_path):
    meta = build_specset(train_db, CLASSES, tmp_path / "s", max_per_class=5, show_progress=False)
    assert meta["per_class"] == {"RIWH": 5, "FACH": 5, "Noise": 5}
    with pytest.raises(SpecSetError, match=r"Hermit Thrush \(HETH\)"):
        build_specset(train_db, [*CLASSES, ("Hermit Thrush", "HETH")], tmp_path / "t", show_progress=False)


def test_a_clip_you_confirmed_in_your_recordings_is_a_row_of_its_class_whatever_the_cap(train_db, tmp_path):
    """The field queue's yes (a 3-s clip in field/<CODE>/) becomes a row of that class at pickle, made
    as extract makes the class's own; a no (rejected/), a yes a no outweighs, a class not trained and an
    unreadable clip do not, and the unreadable one is named with its reason."""
    import soundfile as sf

    recording = sorted((train_db.parent / "recordings" / "RIWH").glob("*.flac"))[0]
    audio, sr = sf.read(recording, dtype="float32")
    clips = tmp_path / "field"
    for folder in ("RIWH", "RIWH/rejected", "HETH"):
        (clips / folder).mkdir(parents=True)
        sf.write(clips / folder / "site4-12.0.wav", audio[: 3 * sr], sr)
    (clips / "RIWH" / "broken.wav").write_bytes(b"RIFF not audio")
    sf.write(clips / "RIWH" / "site4-15.0.wav", audio[: 3 * sr], sr)  # a yes, then a no on the same window
    (clips / "RIWH" / "rejected" / "site4-15.0.png").write_bytes(b"")
    with SpecDB(train_db) as db:
        spec = db.get_meta("spec_settings")
        stored = next(decode(r.value) for r in db.spectrograms() if r.filename == recording.name and r.offset == 0)
    found, bad = field_clips(clips, [code for _, code in CLASSES], spec)
    assert [(c.code, c.file) for c in found] == [("RIWH", "field-site4-12.0.wav")]
    assert [what for what, _ in bad] == ["RIWH/broken.wav"] and bad[0][1]
    assert np.allclose(found[0].spec / 255, stored, atol=1 / 255 + 1e-6)  # as extract made it from the recording
    meta = build_specset(train_db, CLASSES, tmp_path / "s", max_per_class=5, show_progress=False, clips=found)
    assert meta["per_class"] == {"RIWH": 6, "FACH": 5, "Noise": 5} and meta["field_clips"] == {"RIWH": 1}
    ss = SpecSet.open(tmp_path / "s")
    row = ss.rows[-1]
    assert (row["code"], row["file"], row["source"], row["group"]) == ("RIWH", "field-site4-12.0.wav", "field",
                                                                       "rec:field-site4")  # its recording's group
    assert ss.labels[-1] == 0 and np.array_equal(ss.read(len(ss) - 1), found[0].spec)


def test_splits_never_put_one_recording_on_both_sides(specset):
    ss = SpecSet.open(specset)
    for folds, portion in ((1, 0.25), (3, 0.0)):
        splits = make_splits(ss.groups, ss.labels, portion, folds, seed=1)
        seen_val = []
        for tr, va in splits:
            assert len(va) and not {ss.groups[i] for i in tr} & {ss.groups[i] for i in va}
            assert set(ss.labels[va]) == {0, 1, 2}  # every class validated
            seen_val += va.tolist()
        if folds > 1:
            assert sorted(seen_val) == list(range(len(ss)))
    groups = ["dup1", "dup1", "a", "b", "dup1", "c", "d", "e"]  # a duplicate group stays together
    for tr, va in make_splits(groups, np.zeros(8, int), 0.0, 2, seed=0):
        assert not ({groups[i] for i in tr} & {groups[i] for i in va})


def test_augmentation_is_for_training_only_and_reproducible(specset, caplog):
    ss = SpecSet.open(specset)
    ds = SpecDataset(ss, np.arange(len(ss)))
    x, y = ds[3]
    assert torch.equal(x[0], torch.from_numpy(ss.read(3) / np.float32(255)))  # validation: untouched
    aug = Augmenter(AugmentSettings(prob_merge=1.0, prob_real_noise=1.0), ss.labels, ds.fetch, noise_class=2)
    train_ds = SpecDataset(ss, np.arange(len(ss)), aug, seed=7)
    a, ya = train_ds[3]
    b, yb = train_ds[3]
    assert torch.equal(a, b) and torch.equal(ya, yb) and not torch.equal(a, x)
    noise_rows = np.flatnonzero(ss.labels == 2)
    xn, yn = train_ds[int(noise_rows[0])]
    assert yn.tolist() == [0, 0, 1]  # Noise is never merged with anything
    merged = [train_ds[i][1] for i in range(len(ss)) if ss.labels[i] != 2]
    assert any(t.sum() == 2 for t in merged) and all(t[2] == 0 for t in merged)  # merges never add Noise
    Augmenter(AugmentSettings(), ss.labels, ds.fetch, noise_class=None)
    assert "no class named Noise" in caplog.text


def test_train_checkpoints_tracking_and_determinism(specset, tmp_path):
    results, tracking = run(specset, tmp_path / "a", tiny())
    (r,) = results
    assert [p.name for p in r.checkpoints] == ["custom_hgnet_1-e01.ckpt", "custom_hgnet_1-e02.ckpt"]
    ckpt = load_checkpoint(r.checkpoints[-1])  # weights_only: no code runs
    assert [c["code"] for c in ckpt["classes"]] == ["RIWH", "FACH", "Noise"]
    assert ckpt["spec_settings"]["spec_height"] == 192 and len(ckpt["data"]["specs_sha256"]) == 64
    assert {"val_loss", "val_macro_ap", "val_micro_ap", "train_loss"} <= set(r.epochs[-1])
    summary = write_outputs(results, tmp_path / "train.json", tmp_path / "epochs.csv", tmp_path / "curves.png", tracking)
    assert summary["val_macro_ap"] is not None and (tmp_path / "curves.png").stat().st_size > 5000
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking.mlflow_uri)
    run_info = client.get_run(r.run_id)
    assert "val_macro_ap" in run_info.data.metrics and run_info.data.params["train_spectrograms"]
    arts = {a.path for a in client.list_artifacts(r.run_id, "checkpoints")}
    assert "checkpoints/custom_hgnet_1-e02.ckpt" in arts
    assert list((tmp_path / "a" / "logs" / "fold-0").rglob("events.out.tfevents.*"))
    again, _ = run(specset, tmp_path / "b", tiny())
    w1 = load_checkpoint(r.checkpoints[-1])["state_dict"]
    w2 = load_checkpoint(again[0].checkpoints[-1])["state_dict"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)  # same seed, same machine: same weights


def test_averaged_checkpoint_is_the_mean_of_the_last_epochs_and_scores(specset, tmp_path):
    from hawk.infer import Ensemble

    (per_epoch,), _ = run(specset, tmp_path / "a", tiny())
    (avg,), _ = run(specset, tmp_path / "b", tiny(average=True))
    assert [p.name for p in avg.checkpoints] == ["custom_hgnet_1-avg2.ckpt"]
    e1, e2 = (load_checkpoint(p)["state_dict"] for p in per_epoch.checkpoints)
    ckpt = load_checkpoint(avg.checkpoints[0])
    w = ckpt["state_dict"]
    assert ckpt["extra"]["averaged_epochs"] == [1, 2]
    weights = [k for k in w if k.endswith("conv.weight") or k.endswith("fc.weight")]
    assert weights and all(torch.allclose(w[k], (e1[k] + e2[k]) / 2, atol=1e-6) for k in weights)
    assert not torch.equal(w[weights[0]], e2[weights[0]])
    means = [k for k in w if k.endswith("running_mean")]  # batch norm re-estimated for the averaged weights
    assert means and any(not torch.allclose(w[k], (e1[k] + e2[k]) / 2) for k in means)
    ens = Ensemble.load(avg.checkpoints[0], "cpu")
    x = np.stack([SpecSet.open(specset).read(i) for i in range(4)])
    scores = ens.scores(x)
    assert scores.shape == (4, 3) and np.isfinite(scores).all() and len(ens.paths) == 1


def test_last_validation_measures_the_averaged_model_that_is_saved(specset, tmp_path):
    from hawk.ckpt import model_from_checkpoint
    from hawk.training.module import Classifier, class_weights

    s = tiny(average=True, num_epochs=3)
    (res,), _ = run(specset, tmp_path, s, precision="32-true")
    ss = SpecSet.open(specset)
    _, val = make_splits(ss.groups, ss.labels, s.val_portion, 1, s.seed)[0]
    x, y = (torch.stack(t) for t in zip(*(SpecDataset(ss, val)[k] for k in range(len(val)))))
    clf = Classifier(model_from_checkpoint(load_checkpoint(res.checkpoints[0])).eval(),
                     class_weights(ss.labels, len(ss.class_codes), s.class_weight_power), label_smoothing=s.label_smoothing)
    with torch.no_grad():
        loss = float(clf.loss(clf(x), y))
    logged = [e["val_loss"] for e in res.epochs]
    assert loss == pytest.approx(logged[-1], abs=1e-5), (loss, logged)  # the saved model was validated
    assert min(abs(loss - v) for v in logged[:-1]) > 1e-4  # and no earlier epoch's model was


def test_transfer_learning_new_head_and_frozen_backbone(specset, train_db, tmp_path):
    (base,), _ = run(specset, tmp_path / "base", tiny(num_epochs=1, save_last_n=1, val_portion=0.0))
    two = tmp_path / "two"
    build_specset(train_db, CLASSES[:2], two, show_progress=False)  # a new class list
    s = tiny(num_epochs=1, save_last_n=1, val_portion=0.0, load_ckpt_path=str(base.checkpoints[0]),
             freeze_backbone=True)
    (tl,), _ = run(two, tmp_path / "tl", s)
    old, new = load_checkpoint(base.checkpoints[0]), load_checkpoint(tl.checkpoints[0])
    assert [c["code"] for c in new["classes"]] == ["RIWH", "FACH"]
    head = {k for k in new["state_dict"] if k.startswith("head.fc")}
    assert new["state_dict"]["head.fc.weight"].shape[0] == 2
    body = [k for k in old["state_dict"] if k not in head and old["state_dict"][k].dtype.is_floating_point
            and "running" not in k]
    assert all(torch.equal(old["state_dict"][k], new["state_dict"][k]) for k in body)  # frozen
    s = tiny(num_epochs=1, save_last_n=1, val_portion=0.0, load_ckpt_path=str(base.checkpoints[0]))
    (ft,), _ = run(specset, tmp_path / "ft", s)  # full fine-tuning: everything moves
    tuned = load_checkpoint(ft.checkpoints[0])["state_dict"]
    assert not torch.equal(tuned["stem.stem1.conv.weight"], old["state_dict"]["stem.stem1.conv.weight"])


def test_ddp_on_two_cpu_processes(specset, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"] |= {"specs": str(specset), "ckpt": "ckpt", "metrics": "metrics"}
    params["train"] |= {"model_name": "custom_hgnet_1", "num_epochs": 1, "batch_size": 8, "num_workers": 0,
                        "save_last_n": 1}
    params["trainer"] |= {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress": False}
    params["tracking"]["mlflow_uri"] = "sqlite:///mlflow.db"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = procs.run([sys.executable, "-m", "stages.train"], cwd=project, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distributed_backend=gloo" in out.stderr and "All distributed processes registered" in out.stderr
    assert [p.name for p in (project / "ckpt").iterdir()] == ["custom_hgnet_1-avg1.ckpt"]  # the default: averaged
    assert json.loads((project / "metrics" / "train.json").read_text())["val_macro_ap"] is not None
    shutil.rmtree(project)


def test_loader_workers_auto_follow_the_machine(monkeypatch):
    from hawk.training import run as tr

    monkeypatch.setattr(tr.torch.cuda, "is_available", lambda: False)
    for cores, cpu, gpu in ((2, 0, 1), (4, 0, 3), (16, 2, 4)):
        monkeypatch.setattr(tr.os, "cpu_count", lambda: cores)
        assert tr.resolve_workers("auto", "auto") == cpu and tr.resolve_workers("auto", "gpu") == gpu
    assert tr.resolve_workers(3, "cpu") == 3


def test_bn_recalibration_in_bf16_matches_full_precision(specset):
    """The pass runs in the training's precision; its statistics must be those of full precision."""
    from hawk.models import create_model
    from hawk.training.module import recalibrate_bn

    ds = SpecDataset(SpecSet.open(specset), np.arange(len(SpecSet.open(specset))))
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    torch.manual_seed(0)
    full = create_model("custom_hgnet_1", 3)
    half = create_model("custom_hgnet_1", 3)
    half.load_state_dict(full.state_dict())
    recalibrate_bn(full, loader, 4)
    recalibrate_bn(half, loader, 4, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    a, b = full.state_dict(), half.state_dict()
    stats = [k for k in a if k.endswith(("running_mean", "running_var"))]
    assert stats and not any(torch.equal(a[k], b[k]) for k in stats[:1])  # bf16 really ran
    for k in stats:
        assert torch.allclose(a[k], b[k], rtol=0.05, atol=0.02), k
