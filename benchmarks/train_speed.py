"""Training throughput on this machine's CPU, the share of step time spent waiting for data, and peak
memory on training sets larger than the memory the process uses.

    python benchmarks/train_speed.py [--steps 30] [--big 40000]

A synthetic training set (random spectrograms, six classes, one of them Noise, so every augmentation
runs) is written in the pickle format; custom_hgnet_1 and custom_hgnet_2 train for --steps batches of
64 with HawkEars' augmentation and the default data loading (train.num_workers=auto). Then custom_hgnet_1 trains on a small
(2,000) and a large (--big, 40,000 = 2.9 GB) set: peak RSS (VmHWM) should not depend on the set size.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from results import record

CODES = ["AAAA", "BBBB", "CCCC", "DDDD", "EEEE", "Noise"]


def make_set(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    specs = np.lib.format.open_memmap(root / "specs.npy", "w+", np.uint8, (n, 192, 384))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1000):
        k = min(1000, n - start)
        specs[start : start + k] = rng.integers(0, 256, (k, 192, 384), dtype=np.uint8)
    specs.flush()
    with open(root / "rows.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "class_index", "code", "recording_id", "file", "offset", "source", "group"])
        for i in range(n):
            w.writerow([i, i % 6, CODES[i % 6], i // 8, f"r{i // 8}.wav", (i % 8) * 1.5, "bench", f"rec:{i // 8}"])
    from hawk.spectrogram import SpecSettings

    meta = {"format": "hawk-specset/1", "classes": [{"name": c, "code": c} for c in CODES],
            "spec_settings": SpecSettings().identity(), "count": n, "data": {}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


CHILD = """
import json, sys
from pathlib import Path
from hawk.training.run import TrainSettings, TrainerSettings, Tracking, train
specs, model, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
s = TrainSettings(model_name=model, num_epochs=1, val_portion=0.0, save_last_n=0)
t = TrainerSettings(accelerator="cpu", progress=False, limit_train_batches=steps)
tr = Tracking(mlflow_uri=f"sqlite:///{out}/mlflow.db", tensorboard_dir=str(out / "tb"))
(r,) = train(Path(specs), s, t, tr, out / "ckpt")
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": r.seconds, "samples": steps * 64, "hwm_mib": hwm / 1024,
                  "wait_share": r.epochs[-1]["data_wait_share"], "step_seconds": r.epochs[-1]["step_seconds"]}))
"""


def child(specs: Path, model: str, steps: int, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(specs), model, str(steps), str(out)], capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--big", type=int, default=40_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = make_set(tmp / "small", 2000)
        figures = {}
        for model in ("custom_hgnet_1", "custom_hgnet_2"):
            r = child(small, model, args.steps, tmp / model)
            print(f"{model}: {r['samples'] / r['step_seconds']:.1f} spectrograms/s in training steps "
                  f"({r['samples'] / r['seconds']:.1f}/s including start-up), data wait {100 * r['wait_share']:.1f}% "
                  f"of step time, peak RSS {r['hwm_mib']:.0f} MiB")
            figures[model] = {"step_spectrograms_per_s": round(r["samples"] / r["step_seconds"], 1),
                              "data_wait_percent": round(100 * r["wait_share"], 1), "peak_rss_mib": round(r["hwm_mib"])}
        big = make_set(tmp / "big", args.big)
        size_gb = (big / "specs.npy").stat().st_size / 1e9
        r = child(big, "custom_hgnet_1", args.steps, tmp / "big_run")
        print(f"custom_hgnet_1 on {args.big} spectrograms ({size_gb:.1f} GB): peak RSS {r['hwm_mib']:.0f} MiB")
        figures[f"custom_hgnet_1_peak_rss_mib_{args.big}_spectrograms"] = round(r["hwm_mib"])
    record("train-speed", "Training throughput and memory (default precision and loading)", figures,
           command="python benchmarks/train_speed.py")


if __name__ == "__main__":
    main()
