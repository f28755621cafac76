"""Precision and recall of dedup on planted duplicates of every kind (tests/dedup_fixture.py):
exact copies and an exact triple, re-encodes (mp3, ogg, m4a), resampled copies, a gain change, copies
trimmed at the start, the end and both, a trimmed+resampled+re-encoded copy, a copy filed under another
class; the originals are synthetic recordings of two call types, so near-misses abound.

    python benchmarks/dedup_accuracy.py [--originals 20] [--scale 1000]

--scale N also times the comparison step alone on N random fingerprints of 10-120 s recordings (every
pair within the trim window is compared, so time grows with the square of recordings of similar length).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hawk.dedup import FingerprintSettings, Recording, find_duplicates, load_recordings  # noqa: E402
from hawk.extract import extract_class  # noqa: E402
from hawk.spectrogram import SpecSettings  # noqa: E402
from results import record  # noqa: E402
from tests.dedup_fixture import CALLS, pairs, plant  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--originals", type=int, default=20, help="original recordings per class")
    p.add_argument("--scale", type=int, default=0, help="also time comparing this many random recordings")
    args = p.parse_args()
    s = SpecSettings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = plant(root / "rec", args.originals)
        classes = []
        for code in CALLS:
            extract_class(root / "rec" / code, root / f"{code}.db", root / f"{code}.csv", code, code, s,
                          show_progress=False)
            classes.append((code, root / f"{code}.db", root / "rec" / code))
        t = time.perf_counter()
        recs = load_recordings(classes, FingerprintSettings(), show_progress=False)
        dups = find_duplicates(recs, s.sample_rate / s.hop_length / 4, show_progress=False)
        seconds = time.perf_counter() - t
    groups: dict[int, set] = {}
    for d in dups:
        groups.setdefault(d.group, {d.kept.key}).add(d.duplicate.key)
    found, expected = pairs(groups.values()), pairs(truth)
    hit = len(found & expected)
    print(f"{len(recs)} recordings, {len(expected)} duplicate pairs planted, {len(found)} found, {hit} correct")
    print(f"precision {hit / max(len(found), 1):.3f}, recall {hit / len(expected):.3f}, "
          f"fingerprint + compare {seconds:.1f} s")
    for d in dups:
        print(f"  {d.kept.code}/{d.kept.filename} <- {d.duplicate.code}/{d.duplicate.filename}  "
              f"d={d.distance:.3f}  {d.reason}")
    figures = {"recordings": len(recs), "pairs_planted": len(expected), "pairs_found": len(found), "correct": hit,
               "precision": round(hit / max(len(found), 1), 3), "recall": round(hit / len(expected), 3),
               "seconds": round(seconds, 2)}
    if args.scale:
        fps = s.sample_rate / s.hop_length / 4
        rng = np.random.default_rng(0)
        recs = [Recording("X", f"r{i}", rng.standard_normal((int(rng.uniform(10, 120) * fps), 24)).astype(np.float32),
                          44100, f"{i}") for i in range(args.scale)]
        t = time.perf_counter()
        found = find_duplicates(recs, fps, show_progress=False)
        print(f"compare {args.scale} recordings of 10-120 s: {time.perf_counter() - t:.1f} s "
              f"({len(found)} false duplicates)")
        figures[f"compare_{args.scale}_random_recordings_seconds"] = round(time.perf_counter() - t, 1)
    record("dedup-accuracy", "Duplicate finding: planted copies of every kind", figures,
           command=f"python benchmarks/dedup_accuracy.py --scale {args.scale}")


if __name__ == "__main__":
    main()
