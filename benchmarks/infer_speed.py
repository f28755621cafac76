"""Inference speed: real-time factor of the infer step with custom_hgnet_2 at HawkEars settings
(3 s segments, 1.5 s overlap) on twenty three-minute recordings, on each runtime (infer.runtime).

    python benchmarks/infer_speed.py [--files 20] [--seconds 180] [--models 1] [--runtimes torch,onnxruntime,openvino]

The checkpoint has random weights (speed does not depend on them; benchmarks/infer_profile.py checks
accuracy on trained ones). Reported per runtime: scoring time alone (in this process) and the whole
command (`python -m stages.infer`, start-up included) as a new user would run it; the default
runtime (auto) is the row marked as such. Each runtime's export, and its passed check against
PyTorch, are made once per checkpoint and cached (hawk/runtime.py); the whole-command runs find them
there, as every run after a user's first does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hawk.ckpt import save_checkpoint
from hawk.download.demo import synth_recording, write_audio
from hawk.infer import Ensemble, find_recordings, score_files
from hawk.models import create_model
from hawk.spectrogram import SpecSettings
from results import record

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--runtimes", default="torch,onnxruntime,openvino,auto")
    p.add_argument("--models", type=int, default=1, help="checkpoints in the ensemble")
    p.add_argument("--model", default="custom_hgnet_2")
    args = p.parse_args()
    classes = [(f"Class {i}", f"C{i:03d}") for i in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["HAWK_CACHE"] = str(tmp / "cache")  # the export is made once, in this process's run
        rec, ckpt = tmp / "rec", tmp / "ckpt"
        rec.mkdir()
        for i in range(args.files):
            write_audio(rec / f"r{i:02d}.flac", synth_recording("warble", i, args.seconds, 44100), 44100)
        for m in range(args.models):
            save_checkpoint(ckpt / f"m{m}.ckpt", args.model, create_model(args.model, len(classes)), classes,
                            SpecSettings().to_dict())
        audio = args.files * args.seconds
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        figures = {"audio_seconds": audio, "overlap": 1.5, "runtimes": {}}
        print(f"{audio / 60:.0f} min of audio, {args.model} x {args.models}, overlap 1.5 s\n")
        print(f"{'runtime':<12} {'scoring':>9} {'whole command':>14}")
        for name in args.runtimes.split(","):
            ens = Ensemble.load(ckpt, "cpu", name)
            run = score_files(find_recordings(rec), ens, overlap=1.5)
            params["paths"] |= {"ckpt": str(ckpt), "labels": str(tmp / f"labels-{name}")}
            params["infer"] |= {"input": str(rec), "progress": False, "runtime": name}
            (tmp / "params.yaml").write_text(yaml.safe_dump(params))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "stages.infer"], cwd=tmp, check=True, capture_output=True,
                           env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent),
                                "HAWK_CACHE": os.environ["HAWK_CACHE"]})
            wall = time.perf_counter() - start
            label = f"{name} ({ens.runtimes[0]})" if name == "auto" else name
            print(f"{label:<12} {audio / run.seconds:>8.0f}x {audio / wall:>13.0f}x")
            figures["runtimes"][label] = {"scoring_x_real_time": round(audio / run.seconds, 1),
                                          "whole_command_x_real_time": round(audio / wall, 1),
                                          "whole_command_seconds": round(wall, 1)}
    record("infer-speed", f"Inference speed, {args.model} x {args.models}, 3 s segments, 1.5 s overlap", figures,
           command=f"python benchmarks/infer_speed.py --models {args.models} --model {args.model}")

if __name__ == "__main__":
    main()
