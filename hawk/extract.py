"""Build (or bring up to date) one class's spectrogram database from its folder of recordings.

Recordings are decoded and transformed in parallel worker processes (or Ray tasks, ``engine``); a local
worker streams its spectrograms to a spill file so memory stays flat however long the recording, and
the main process moves each recording into SQLite in one transaction. A crash therefore never leaves
half a recording, and a re-run adds only recordings the database lacks (and drops ones whose files are
gone).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from hawk import activity
from hawk.audio import AudioError, duration, is_audio_file, iter_mono
from hawk.db import SpecDB, damage
from hawk.fsutil import exclusive_lock
from hawk.manifest import read_manifest
from hawk.progress import progress
from hawk.reports import write_skip_report
from hawk.spectrogram import SpecSettings, SpectrogramMaker, encode, normalise

log = logging.getLogger(__name__)
_REC = struct.Struct("<dI")  # offset seconds, blob length
SILENCE = 1e-6
# Below this much audio a pool costs more than it gains: its processes take ~1.5 s to start (each
# imports torch), while one core extracts ~200 s of audio per second (a 4-minute class: 2.3 s in this
# process, 3.1 s with two workers).
SMALL_JOB_SECONDS = 600.0


@dataclass
class ExtractResult:
    added_recordings: int = 0
    added_spectrograms: int = 0
    removed_recordings: int = 0
    kept_recordings: int = 0
    blank_segments: int = 0  # segments with nothing above 16-bit noise, not stored (hawk/activity.py)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def extract_recording(path: str, settings: SpecSettings, sink: Callable[[float, bytes], None]) -> dict[str, Any]:
    """Worker: the encoded spectrograms of one recording, each passed to ``sink(offset, blob)`` as it is
    made; returns counts and each segment's activity, or the reason the recording failed."""
    try:
        info, blocks = iter_mono(path, settings.sample_rate, settings.block_seconds, settings.check_seconds)
        peak = 0.0
        samples = 0

        def tracked() -> Iterator[np.ndarray]:
            nonlocal peak, samples
            for b in blocks:
                samples += len(b)
                if len(b):
                    peak = max(peak, float(np.abs(b).max()))
                yield b

        n = blank = 0
        meter = activity.ActivityMeter(activity.noise_floor(settings))
        for offset, mag in SpectrogramMaker(settings).segments(tracked(), raw=True):
            if meter.add(offset, mag):
                sink(offset, encode(normalise(mag), settings.compress_level))
                n += 1
            else:
                blank += 1
        seconds = samples / settings.sample_rate
        if samples == 0:
            return {"error": "no audio samples (empty or corrupt file)"}
        if peak < SILENCE:
            return {"error": f"silent (peak amplitude {peak:.1e})"}
        if n == 0 and blank:
            return {"error": f"silent (none of its {blank} segments rises above 16-bit noise)"}
        if n == 0:
            return {"error": f"too short ({seconds:.2f} s < segment length {settings.segment_len} s)"}
        return {"n": n, "blank": blank, "seconds": seconds, "sample_rate": info.sample_rate,
                "channels": info.channels, "activity": meter.activity()}
    except AudioError as e:
        return {"error": e.reason}
    except Exception as e:  # a bad recording must never stop the stage
        return {"error": f"{type(e).__name__}: {e}"}


def extract_to_spill(path: str, settings: SpecSettings, spill: str) -> dict[str, Any]:
    """Local worker process: spectrograms into a spill file, so memory stays flat however long the recording."""
    with open(spill, "wb") as f:
        def write(offset: float, blob: bytes) -> None:
            f.write(_REC.pack(offset, len(blob)))
            f.write(blob)

        return extract_recording(path, settings, write)


def extract_in_memory(path: str, settings: SpecSettings) -> dict[str, Any]:
    """Ray task: spectrograms returned with the counts (a cluster's driver cannot read a worker's disk)."""
    rows: list[tuple[float, bytes]] = []
    out = extract_recording(path, settings, lambda offset, blob: rows.append((offset, blob)))
    return out if "error" in out else {**out, "rows": rows}


def read_spill(spill: Path) -> Iterator[tuple[float, bytes]]:
    with open(spill, "rb") as f:
        while head := f.read(_REC.size):
            offset, length = _REC.unpack(head)
            yield offset, f.read(length)


def _init_worker(parent_pid: int) -> None:
    die_with_parent(parent_pid)  # first: importing torch takes seconds on a busy machine
    import torch

    torch.set_num_threads(1)  # one process per core does better than threads inside each


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when its parent dies, however it dies (``kill -9`` included):
    an orphaned worker would go on decoding into a spill file nobody reads."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def extract_class(
    rec_dir: str | Path,
    db_path: str | Path,
    report_path: str | Path,
    name: str,
    code: str,
    settings: SpecSettings,
    workers: int = 0,
    category: str = "bird",
    show_progress: bool = True,
    engine: Any = None,
) -> ExtractResult:
    """Bring ``db_path`` in line with the recordings in ``rec_dir``; list skipped files in ``report_path``.

    ``workers`` 0 means one per CPU core, or this process alone for less than ``SMALL_JOB_SECONDS``
    of audio; 1 runs in this process. ``engine`` (a
    :class:`hawk.ray_engine.RayEngine`) spreads the recordings over a Ray cluster instead; either way
    only this process writes the database. A database made with other spectrogram settings, or whose
    activity was measured another way (or not at all: made by an older hawk), is rebuilt from scratch,
    since its contents would no longer match; so is a damaged one (it is derived data). A second
    extract of the same database at once fails with one line (:class:`hawk.fsutil.LockedError`).
    """
    db_path = Path(db_path)
    with exclusive_lock(db_path.parent / f".{db_path.name}.extract-lock", f"the class database {db_path}"):
        return _extract_class(Path(rec_dir), db_path, report_path, name, code, settings, workers, category,
                              show_progress, engine)


def _extract_class(rec_dir: Path, db_path: Path, report_path: str | Path, name: str, code: str,
                   settings: SpecSettings, workers: int, category: str, show_progress: bool,
                   engine: Any) -> ExtractResult:
    start = time.perf_counter()
    result = ExtractResult()
    identity = settings.identity()
    if db_path.exists() and (why := damage(db_path)):
        log.warning("%s is damaged (%s); rebuilding it from the recordings", db_path, why)
        db_path.unlink()
    if db_path.exists():
        with SpecDB(db_path) as db:
            stale = [what for key, want, what in (("spec_settings", identity, "spectrogram settings"),
                                                  ("activity", activity.DEFINITION, "activity measure"))
                     if db.get_meta(key) != want] if db.count("Recording") else []
        if stale:
            log.warning("%s: %s changed; rebuilding the database", db_path, " and ".join(stale))
            db_path.unlink()
    spill_dir = db_path.parent / f".{db_path.stem}.spill"
    spill_dir.mkdir(exist_ok=True)
    for stale in spill_dir.iterdir():
        stale.unlink()

    manifest = read_manifest(rec_dir / "manifest.csv") if (rec_dir / "manifest.csv").exists() else {}
    files = sorted(p for p in rec_dir.iterdir() if is_audio_file(p)) if rec_dir.is_dir() else []
    if not rec_dir.is_dir():
        log.warning("%s: no recordings folder; the database will be empty", rec_dir)
    with SpecDB(db_path) as db:
        with db.transaction():
            db.set_meta("spec_settings", identity)
            db.set_meta("activity", activity.DEFINITION)
            db.set_meta("class", {"name": name, "code": code})
            sub_id = db.subcategory_id(name, code, category)
        existing = db.recordings()
        present = {p.name for p in files}
        for fname, rec_id in existing.items():
            if fname not in present:
                with db.transaction():
                    db.delete_recording(rec_id)
                result.removed_recordings += 1
        todo = [p for p in files if p.name not in existing]
        result.kept_recordings = len(files) - len(todo)
        today = time.strftime("%Y-%m-%d")
        if engine is None:
            jobs = [(str(p), settings, str(spill_dir / f"{i}.bin")) for i, p in enumerate(todo)]
            results = _run(jobs, workers or (1 if _is_small(todo) else 0))
        else:
            # absolute, for workers in their own folders; not resolved: a symlink keeps its own name
            jobs = [(os.path.abspath(p), settings) for p in todo]
            results = engine.map(extract_in_memory, jobs, lambda job, why: {"path": job[0], "error": why})
        for job, out in progress(results, total=len(jobs), desc=f"extract {code}", enabled=show_progress):
            path, spill = job[0], Path(job[2]) if engine is None else None
            fname = Path(path).name
            if "error" in out:
                result.skipped.append((fname, out["error"]))
                log.warning("skipped %s: %s", path, out["error"])
            else:
                prov = dict(manifest.get(fname, {}), sample_rate=out["sample_rate"], channels=out["channels"])
                prov.setdefault("source", "local")
                with db.transaction():
                    src = db.source_id(prov["source"])
                    rec = db.insert_recording(src, sub_id, fname, out["seconds"], prov)
                    rows = read_spill(spill) if spill else out["rows"]
                    result.added_spectrograms += db.insert_spectrograms(rec, rows, today)
                    db.set_activity(rec, out["activity"])
                result.added_recordings += 1
                result.blank_segments += out["blank"]
            if spill:
                spill.unlink(missing_ok=True)
    spill_dir.rmdir()
    write_skip_report(report_path, result.skipped)
    result.seconds = time.perf_counter() - start
    return result


def _is_small(paths: list[Path]) -> bool:
    total = 0.0
    for p in paths:  # stops reading headers as soon as the answer is known
        total += duration(p)
        if total >= SMALL_JOB_SECONDS:
            return False
    return True


def _run(jobs: list[tuple[str, SpecSettings, str]], workers: int) -> Iterator[tuple[tuple, dict[str, Any]]]:
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, extract_to_spill(*job)
        return
    ctx = get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(extract_to_spill, *job): job for job in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
