"""Training throughput side by side: hawk's trainer against BriteKit's (HawkEars' own toolkit).

    python -m venv /tmp/bk && /tmp/bk/bin/pip install britekit==1.8.4 torchaudio==2.11.0
    python benchmarks/britekit_compare.py --britekit /tmp/bk/bin/britekit --kit /tmp/kit

(torchaudio 2.11.1, which britekit's ranges resolve to today, does not load against torch 2.11.0.)
Both train a PP-HGNetV2 network of about the same size (hawk custom_hgnet_2, BriteKit hgnet.5) on
192 x 384 spectrograms of the same recordings (the kit's training sources; see benchmarks/kit.py),
batch 64, two data-loader workers, CPU only, with each toolkit's own augmentation; hawk once with its
default precision (auto: BF16 mixed where the CPU has native BF16) and once in full precision, as
BriteKit's default trains. Each trainer runs
for 1 and for 2 epochs; the difference is one epoch's time without start-up, so the rate is
spectrograms per second of steady training. Everything runs in this one call, one after the other.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BK_CFG = """audio:
  spec_duration: 3.0
  spec_height: 192
  spec_width: 384
  sampling_rate: 37120
  min_freq: 200
  max_freq: 13000
train:
  model_type: hgnet.5
  head_type: basic
  num_epochs: {epochs}
  num_workers: 2
  batch_size: 64
  val_portion: 0
  save_last_n: 1
"""

HAWK_CHILD = """
import json, sys, time
from pathlib import Path
from hawk.training.run import TrainSettings, TrainerSettings, Tracking, train
specs, epochs, out, precision = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
s = TrainSettings(model_name="custom_hgnet_2", num_epochs=epochs, val_portion=0.0, save_last_n=1, num_workers=2)
t = TrainerSettings(accelerator="cpu", progress=False, precision=precision)
start = time.perf_counter()
train(specs, s, t, Tracking(mlflow_uri=f"sqlite:///{out}/mlflow.db", tensorboard_dir=str(out / "tb")), out / "ckpt")
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.perf_counter() - start


def britekit(bk: str, kit: Path, work: Path) -> dict:
    proj = work / "britekit"
    proj.mkdir()
    timed([bk, "init"], proj)
    (proj / "cfg1.yaml").write_text(BK_CFG.format(epochs=1))
    (proj / "cfg2.yaml").write_text(BK_CFG.format(epochs=2))
    for src in sorted((kit / "sources").iterdir()):
        timed([bk, "extract-all", "-c", "cfg1.yaml", "--name", src.name, "--code", src.name, "--dir", str(src)], proj)
    timed([bk, "pickle-train", "-c", "cfg1.yaml"], proj)
    with sqlite3.connect(proj / "data" / "training.db") as db:
        n = db.execute("SELECT COUNT(*) FROM SpecValue").fetchone()[0]
    t1 = timed([bk, "train", "-c", "cfg1.yaml"], proj)
    t2 = timed([bk, "train", "-c", "cfg2.yaml"], proj)
    params = _params(next(proj.rglob("*.ckpt")))  # under BriteKit's logger folder
    return {"spectrograms": n, "one_epoch_s": t1, "two_epochs_s": t2, "parameters": params}


def _params(ckpt: Path) -> int:
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    return sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running_" not in k)


def hawk_set(kit: Path, work: Path) -> tuple[Path, int, int]:
    """The kit's training sources extracted and pickled the hawk way: (specs folder, count, classes)."""
    from hawk.curation import merge_dbs
    from hawk.extract import extract_class
    from hawk.specset import build_specset
    from hawk.spectrogram import SpecSettings

    classes = sorted(p.name for p in (kit / "sources").iterdir())
    dbs = []
    for code in classes:
        db = work / "hawk" / f"{code}.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        extract_class(kit / "sources" / code, db, db.with_suffix(".csv"), code, code, SpecSettings(), show_progress=False)
        dbs.append(db)
    merge_dbs(dbs, work / "hawk" / "train.db")
    meta = build_specset(work / "hawk" / "train.db", [(c, c) for c in classes], work / "hawk" / "specs",
                         show_progress=False)
    return work / "hawk" / "specs", meta["count"], len(classes)


def hawk(specs: Path, count: int, classes: int, precision: str, work: Path) -> dict:
    from hawk.models import count_parameters, create_model

    times = []
    for epochs in (1, 2):
        out = work / "hawk" / f"run-{precision}-{epochs}"
        out.mkdir()
        r = subprocess.run([sys.executable, "-c", HAWK_CHILD, str(specs), str(epochs), str(out), precision],
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode:
            raise SystemExit(f"hawk training failed:\n{r.stderr[-3000:]}")
        times.append(json.loads(r.stdout.strip().splitlines()[-1])["seconds"])
    return {"spectrograms": count, "one_epoch_s": times[0], "two_epochs_s": times[1],
            "parameters": count_parameters(create_model("custom_hgnet_2", classes))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--britekit", required=True, help="the britekit command of a separate venv")
    p.add_argument("--kit", type=Path, required=True, help="a kit folder written by benchmarks/kit.py")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs, count, classes = hawk_set(args.kit, work)
        results = {}
        for name, precision in (("hawk (precision auto)", "auto"), ("hawk (32-true)", "32-true")):
            results[name] = hawk(specs, count, classes, precision, work)
            print(name, json.dumps(results[name]), flush=True)
        results["britekit (its default, 32)"] = britekit(args.britekit, args.kit, work)
    for name, r in results.items():
        epoch = r["two_epochs_s"] - r["one_epoch_s"]
        r["spectrograms_per_s"] = r["spectrograms"] / epoch if r["spectrograms"] and epoch > 0 else None
        print(f"{name}: {r['parameters'] / 1e6:.2f}M parameters, {r['spectrograms']} spectrograms, "
              f"1 epoch {r['one_epoch_s']:.0f} s, 2 epochs {r['two_epochs_s']:.0f} s -> "
              f"{r['spectrograms_per_s']:.1f} spectrograms/s")
    b = results["britekit (its default, 32)"]["spectrograms_per_s"]
    for name in ("hawk (precision auto)", "hawk (32-true)"):
        h = results[name]["spectrograms_per_s"]
        if h and b:
            print(f"{name} / BriteKit throughput: {h / b:.2f}")


if __name__ == "__main__":
    main()
