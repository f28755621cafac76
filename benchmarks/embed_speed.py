"""Embedding throughput of the embed step (BirdNET v2.4), spectrograms per second, per runtime.

    python benchmarks/embed_speed.py [--recordings 10] [--seconds 60]

Builds a class database from synthetic recordings in a temporary folder, then embeds it with each
``embedder.runtime`` (``auto``: front end as matrix products + network on OpenVINO; ``litert``: the
model as shipped), with 1 thread and with all cores; includes reading and resampling the audio to
48 kHz, and, apart, the network alone on segments already in memory (the all-cores figure is the
one the archive-speed goal of >= 100 windows/s on 2 cores is about). Records the largest embedding
difference between the runtimes. BirdNET's weights are
licensed CC BY-NC-SA 4.0.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import tempfile
from pathlib import Path

from hawk.download.demo import synth_recording, write_audio
from hawk.embed import create_embedder
from hawk.embed.run import embed_class
from hawk.embed.store import load_embeddings
from hawk.extract import extract_class
from hawk.spectrogram import SpecSettings
from results import record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rec = root / "rec"
        rec.mkdir()
        for i in range(args.recordings):
            write_audio(rec / f"r{i}.flac", synth_recording("warble", i, args.seconds, 44100), 44100)
        extract_class(rec, root / "X.db", root / "x.csv", "X", "X", SpecSettings(), show_progress=False)
        segments = np.stack([synth_recording("warble", 100 + i, 3.0, 48000)[:144000] for i in range(128)])
        runtimes: dict[str, Any] = {}
        vectors = {}
        for runtime in ("auto", "litert"):
            for threads in (1, os.cpu_count() or 1):
                emb = create_embedder("birdnet", threads=threads, runtime=runtime)
                out = root / f"X-{runtime}-{threads}.npz"
                res = embed_class(root / "X.db", rec, emb, out, root / "r.csv", "X", show_progress=False)
                rate = res.embedded / res.seconds
                print(f"birdnet {runtime} ({emb.runtime}), {threads} thread(s): {res.embedded} spectrograms in "
                      f"{res.seconds:.1f} s = {rate:.1f} spectrograms/s ({1000 / rate:.0f} ms each)")
                runtimes.setdefault(runtime, {"ran_as": emb.runtime})[f"{threads}_threads_spectrograms_per_s"] = round(rate, 1)
                vectors[runtime] = load_embeddings(out).vectors
                emb.embed(segments[:16])  # warm-up: first-call allocations
                start = time.perf_counter()
                emb.embed(segments)
                alone = len(segments) / (time.perf_counter() - start)
                print(f"  the network alone, {len(segments)} segments in memory: {alone:.1f} windows/s")
                runtimes[runtime][f"{threads}_threads_network_windows_per_s"] = round(alone, 1)
        diff = float(abs(vectors["auto"] - vectors["litert"]).max())
        print(f"largest difference between the runtimes' (unit-length) embeddings: {diff:.1e}")
    record("embed-speed", "BirdNET embedding speed", {"runtimes": runtimes, "max_abs_diff_unit_vectors": diff,
                                                      "recordings": args.recordings, "seconds_each": args.seconds},
           command="python benchmarks/embed_speed.py", notes="spectrograms_per_s: reading and resampling the audio included; network_windows_per_s: "
                 "segments in memory. BirdNET v2.4 (CC BY-NC-SA 4.0).")


if __name__ == "__main__":
    main()
