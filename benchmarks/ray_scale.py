"""Ray scaling: throughput of infer and extract on the local engine and on Ray with 1 and 2 workers
(a cluster of that many CPUs started in-process on this machine), in one run, as ratios.

    python benchmarks/ray_scale.py [--files 24] [--seconds 60]

Infer scores custom_hgnet_2 (random weights; speed does not depend on them) at 1.5 s overlap; extract
builds one class database at HawkEars' settings. For Ray, "job" is the whole Ray Data job (actor and
task start-up included) and "steady" counts from the first result to the last, what a long archive
run approaches. The local engine uses every core (torch threads plus a decoding thread for infer, one
process per core for extract).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from hawk.ckpt import save_checkpoint
from hawk.download.demo import synth_recording, write_audio
from hawk.extract import extract_class
from hawk.infer import Ensemble, iter_scores
from hawk.models import create_model
from hawk.ray_engine import RayEngine
from hawk.spectrogram import SpecSettings
from results import record


def timed(results) -> tuple[float, float, int]:
    """(whole, first-to-last) seconds and the count of an iterator of results."""
    start = time.perf_counter()
    first = None
    n = 0
    for _ in results:
        n += 1
        first = first or time.perf_counter()
    end = time.perf_counter()
    return end - start, end - (first or end), n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=24)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    classes = [(f"Class {i}", f"C{i:03d}") for i in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec = tmp / "rec"
        for i in range(args.files):
            write_audio(rec / f"r{i:02d}.flac", synth_recording("warble", i, args.seconds, 44100), 44100)
        files = sorted(rec.iterdir())
        save_checkpoint(tmp / "ckpt" / "m.ckpt", "custom_hgnet_2", create_model("custom_hgnet_2", len(classes)),
                        classes, SpecSettings().to_dict())
        ens = Ensemble.load(tmp / "ckpt", "cpu")
        hours = args.files * args.seconds / 3600
        rows = []

        def extract(engine, name: str) -> tuple[float, float, int]:
            db = tmp / f"{name}.db"
            start = time.perf_counter()
            res = extract_class(rec, db, tmp / f"{name}.csv", "Warbler", "WARB", SpecSettings(), workers=0,
                                show_progress=False, engine=engine)
            return time.perf_counter() - start, 0.0, res.added_recordings

        local_infer = timed(iter_scores(files, ens, 1.5))
        local_extract = extract(None, "local")
        rows.append(("local", local_infer, local_extract))
        for workers in (1, 2):
            with RayEngine(num_cpus=workers) as eng:
                inf = timed(iter_scores(files, ens, 1.5, engine=eng))
                ext = extract(eng, f"ray{workers}")
            rows.append((f"ray, {workers} worker(s)", inf, ext))
            assert not ray.is_initialized()
        base_i, base_e = local_infer[0], local_extract[0]
        print(f"{args.files} recordings, {hours * 60:.0f} min of audio\n")
        print(f"{'engine':<20} {'infer job':>10} {'steady':>8} {'x real time':>12} {'vs local':>9} "
              f"{'extract':>9} {'vs local':>9}")
        figures = {}
        for name, (ij, isteady, _), (ej, _, _) in rows:
            print(f"{name:<20} {ij:>9.1f}s {isteady:>7.1f}s {hours * 3600 / ij:>11.0f}x {base_i / ij:>8.2f}x "
                  f"{ej:>8.1f}s {base_e / ej:>8.2f}x")
            figures[name] = {"infer_job_s": round(ij, 1), "infer_first_to_last_s": round(isteady, 1),
                             "infer_x_real_time": round(hours * 3600 / ij), "extract_s": round(ej, 1)}
        local = figures.pop("local")
        record("ray-scale", f"Ray engine against the local engine ({args.files} one-minute recordings)", figures,
               {"local": local}, command="python benchmarks/ray_scale.py")


if __name__ == "__main__":
    main()
