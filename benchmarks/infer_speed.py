"""Inference speed: real-time factor of the infer step with custom_hgnet_2 at HawkEars settings
(3 s segments, 1.5 s overlap) on ten one-minute recordings.

    python benchmarks/infer_speed.py [--files 10] [--seconds 60] [--models 1]

The checkpoint has random weights (speed does not depend on them). Reported: scoring time alone and
the whole command (`python -m stages.infer`, start-up included) as a new user would run it.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--models", type=int, default=1, help="checkpoints in the ensemble")
    p.add_argument("--model", default="custom_hgnet_2")
    args = p.parse_args()
    classes = [(f"Class {i}", f"C{i:03d}") for i in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec, ckpt = tmp / "rec", tmp / "ckpt"
        rec.mkdir()
        for i in range(args.files):
            write_audio(rec / f"r{i:02d}.flac", synth_recording("warble", i, args.seconds, 44100), 44100)
        for m in range(args.models):
            save_checkpoint(ckpt / f"m{m}.ckpt", args.model, create_model(args.model, len(classes)), classes,
                            SpecSettings().to_dict())
        audio = args.files * args.seconds
        ens = Ensemble.load(ckpt, "cpu")
        run = score_files(find_recordings(rec), ens, overlap=1.5)
        print(f"scoring: {audio:.0f} s of audio in {run.seconds:.1f} s = {audio / run.seconds:.0f}x real time "
              f"({args.model}, {args.models} model(s), overlap 1.5 s)")
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["paths"] |= {"ckpt": str(ckpt), "labels": str(tmp / "labels")}
        params["infer"] |= {"input": str(rec), "progress": False}
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stages.infer"], cwd=tmp, check=True, capture_output=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)})
        wall = time.perf_counter() - start
        print(f"whole command: {wall:.1f} s = {audio / wall:.0f}x real time, start-up included")
    record("infer-speed", f"Inference speed, {args.model} x {args.models}, 3 s segments, 1.5 s overlap",
           {"audio_seconds": audio, "scoring_x_real_time": round(audio / run.seconds, 1),
            "whole_command_x_real_time": round(audio / wall, 1), "whole_command_seconds": round(wall, 1)},
           command=f"python benchmarks/infer_speed.py --models {args.models} --model {args.model}")


if __name__ == "__main__":
    main()
