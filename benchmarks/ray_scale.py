"""Ray scaling: the local engine against Ray with 1 and 2 workers (a cluster of that many CPUs started
by the stage on this machine), in one run, as ratios.

    python benchmarks/ray_scale.py [--files 24] [--seconds 60] [--archive 10000] [--long-hours 2]
                                   [--only files,archive,long]

- files: infer and extract, in-process, on ``--files`` recordings of ``--seconds``. For Ray, "job" is
  the whole Ray Data job (actor and task start-up included) and "steady" counts from the first result
  to the last, what a long archive run approaches.
- archive: the whole ``python -m stages.infer`` command on ``--archive`` short files (3 s, one segment
  each: the per-recording work of the driver, writing label files and the resume index, dominates),
  local and on Ray with 2 workers: recordings per second per core, the driver's peak memory, and the
  time from the start to the first recording labelled.
- long: the same command on one recording of ``--long-hours``, which Ray scores in parts
  (``engine.part_seconds``) on 1 and on 2 workers.

Infer scores custom_hgnet_2 (random weights; speed does not depend on them) at 1.5 s overlap; extract
builds one class database at HawkEars' settings. The local engine uses every core (torch threads plus
a decoding thread for infer, one process per core for extract).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
import soundfile as sf

from hawk.ckpt import save_checkpoint
from hawk.download.demo import synth_recording, write_audio
from hawk.extract import extract_class
from hawk.infer import Ensemble, iter_scores
from hawk.models import create_model
from hawk.ray_engine import RayEngine
from hawk.spectrogram import SpecSettings
from results import ROOT, record

CLASSES = [(f"Class {i}", f"C{i:03d}") for i in range(50)]


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


def peak_rss_mb(pid: int, stop: threading.Event, out: list[float]) -> None:
    """Poll the process's high-water mark of resident memory (VmHWM) until ``stop``."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            return
        stop.wait(0.2)


def stage(ckpt: Path, source: Path, labels: Path, *overrides: str) -> dict[str, float]:
    """One ``python -m stages.infer`` run: wall seconds, the driver's peak memory, time to first result."""
    cmd = [sys.executable, "-m", "stages.infer", f"paths.ckpt={ckpt}", f"infer.input={source}", f"paths.labels={labels}",
           "infer.progress=false", "infer.min_score=0.99", *overrides]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop, peaks = threading.Event(), []
    watch = threading.Thread(target=peak_rss_mb, args=(proc.pid, stop, peaks), daemon=True)
    watch.start()
    text = proc.communicate()[0]
    wall = time.perf_counter() - start
    stop.set()
    watch.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text}")
    first = re.search(r"first recording labelled ([\d.]+) s", text)
    return {"wall_s": round(wall, 1), "driver_peak_mb": round(max(peaks, default=0)),
            "first_result_s": float(first.group(1)) if first else None}


def in_process(tmp: Path, files: int, seconds: float, ens: Ensemble) -> dict[str, dict]:
    rec = tmp / "rec"
    for i in range(files):
        write_audio(rec / f"r{i:02d}.flac", synth_recording("warble", i, seconds, 44100), 44100)
    paths = sorted(rec.iterdir())
    hours = files * seconds / 3600
    rows = []

    def extract(engine, name: str) -> tuple[float, float, int]:
        start = time.perf_counter()
        res = extract_class(rec, tmp / f"{name}.db", tmp / f"{name}.csv", "Warbler", "WARB", SpecSettings(), workers=0,
                            show_progress=False, engine=engine)
        return time.perf_counter() - start, 0.0, res.added_recordings

    rows.append(("local", timed(iter_scores(paths, ens, 1.5)), extract(None, "local")))
    for workers in (1, 2):
        with RayEngine(num_cpus=workers) as eng:
            rows.append((f"ray, {workers} worker(s)", timed(iter_scores(paths, ens, 1.5, engine=eng)),
                         extract(eng, f"ray{workers}")))
        assert not ray.is_initialized()
    base_i, base_e = rows[0][1][0], rows[0][2][0]
    print(f"\n{files} recordings, {hours * 60:.0f} min of audio, in-process\n")
    print(f"{'engine':<20} {'infer job':>10} {'steady':>8} {'x real time':>12} {'vs local':>9} "
          f"{'extract':>9} {'vs local':>9}")
    figures = {}
    for name, (ij, isteady, _), (ej, _, _) in rows:
        print(f"{name:<20} {ij:>9.1f}s {isteady:>7.1f}s {hours * 3600 / ij:>11.0f}x {base_i / ij:>8.2f}x "
              f"{ej:>8.1f}s {base_e / ej:>8.2f}x")
        figures[name] = {"infer_job_s": round(ij, 1), "infer_first_to_last_s": round(isteady, 1),
                         "infer_x_real_time": round(hours * 3600 / ij), "extract_s": round(ej, 1)}
    return figures


def archive(tmp: Path, files: int, ckpt: Path) -> dict[str, dict]:
    rec = tmp / "archive"
    for i in range(files):  # 3 s each: one segment, so the per-recording costs show
        write_audio(rec / f"d{i // 1000:02d}" / f"a{i:05d}.flac", synth_recording("warble", i, 3.0, 32000), 32000)
    print(f"\n{files} recordings of 3 s, whole command\n")
    print(f"{'engine':<20} {'wall':>8} {'rec/s':>7} {'rec/s/core':>11} {'driver MB':>10} {'first result':>13}")
    figures = {}
    for name, extra, cores in (("local", (), 2), ("ray, 2 workers", ("engine=ray", "engine.num_cpus=2"), 2)):
        r = stage(ckpt, rec, tmp / f"labels-{len(figures)}", *extra)
        r["recordings_per_s_per_core"] = round(files / r["wall_s"] / cores, 1)
        figures[name] = r
        print(f"{name:<20} {r['wall_s']:>7.1f}s {files / r['wall_s']:>7.1f} {r['recordings_per_s_per_core']:>11.1f} "
              f"{r['driver_peak_mb']:>10.0f} {r['first_result_s']:>12.1f}s")
    return figures


def long_recording(tmp: Path, hours: float, ckpt: Path) -> dict[str, dict]:
    path = tmp / "long" / "long.flac"
    path.parent.mkdir()
    with sf.SoundFile(path, "w", 44100, 1, format="FLAC") as f:  # written a minute at a time: memory stays flat
        for minute in range(int(hours * 60)):
            f.write(synth_recording("warble", minute, 60.0, 44100))
    print(f"\none recording of {hours:g} h, whole command\n")
    print(f"{'engine':<20} {'wall':>8} {'x real time':>12} {'driver MB':>10} {'first result':>13}")
    figures = {}
    for name, extra in (("local", ()), ("ray, 1 worker", ("engine=ray", "engine.num_cpus=1")),
                        ("ray, 2 workers", ("engine=ray", "engine.num_cpus=2"))):
        r = stage(ckpt, path, tmp / f"long-labels-{len(figures)}", *extra)
        r["x_real_time"] = round(hours * 3600 / r["wall_s"])
        figures[name] = r
        print(f"{name:<20} {r['wall_s']:>7.1f}s {r['x_real_time']:>11.0f}x {r['driver_peak_mb']:>10.0f} "
              f"{r['first_result_s']:>12.1f}s")
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=24)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--archive", type=int, default=10_000, help="short recordings for the archive run")
    p.add_argument("--long-hours", type=float, default=2.0, help="length of the one long recording")
    p.add_argument("--only", default="files,archive,long", help="sections to run, comma-separated")
    args = p.parse_args()
    only = set(args.only.split(","))
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "ckpt"
        save_checkpoint(ckpt / "m.ckpt", "custom_hgnet_2", create_model("custom_hgnet_2", len(CLASSES)), CLASSES,
                        SpecSettings().to_dict())
        ens = Ensemble.load(ckpt, "cpu")  # infer.runtime=auto, as every command below
        figures["runtime"] = ens.runtimes[0]
        if "files" in only:
            figures["files"] = in_process(tmp, args.files, args.seconds, ens)
        if "archive" in only:
            figures["archive"] = archive(tmp, args.archive, ckpt)
        if "long" in only:
            figures["long"] = long_recording(tmp, args.long_hours, ckpt)
    record("ray-scale", f"Ray engine against the local engine: {args.files} one-minute recordings in-process, "
           f"{args.archive} 3-s recordings and one {args.long_hours:g}-h recording with the whole infer command",
           figures, command="python benchmarks/ray_scale.py")


if __name__ == "__main__":
    main()
