"""Precision and recall of dedup on planted duplicates of every kind (tests/dedup_fixture.py):
exact copies and an exact triple, re-encodes (mp3, ogg, m4a), resampled copies, a gain change, copies
trimmed at the start, the end and both, a trimmed+resampled+re-encoded copy, a copy filed under another
class; the originals are synthetic recordings of two call types, so near-misses abound.

    python benchmarks/dedup_accuracy.py [--originals 20] [--scale 1000,5000,50000] [--all-pairs-up-to 5000]

--scale N,M,... also times the comparison step alone on N (then M, ...) fingerprints of 10-60 s
recordings, a tenth of them with a planted copy (trimmed at either or both ends, re-encoded, resampled,
or all at once, made on the fingerprint itself), the originals built from 50 shared call shapes so many
look alike, and prints time, precision and recall per size: with the default candidates (each
recording's nearest by fingerprint summary) and, up to --all-pairs-up-to recordings, with every pair of
compatible length compared (dedup.neighbours=0, the cost that grows with the square).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hawk.dedup import FingerprintSettings, Recording, find_duplicates, load_recordings, summary_bands  # noqa: E402
from hawk.extract import extract_class  # noqa: E402
from hawk.spectrogram import SpecSettings  # noqa: E402
from results import record  # noqa: E402
from tests.dedup_fixture import CALLS, pairs, plant  # noqa: E402


def synthetic(n: int, fps: float, seed: int = 0) -> tuple[list[Recording], set[frozenset[str]]]:
    """``n`` fingerprints of 10-60 s, the last tenth copies of others; and the copy pairs. Calls of 50
    shapes (0.6 s each) at random times over noise, made as :func:`hawk.dedup.fingerprint` makes them
    (each frame's level and the recording's colour removed); copies are trimmed at the start, the end or
    both (up to 4 s), re-encoded (noise at a tenth of the signal), resampled (the top bands lost), or all."""
    rng = np.random.default_rng(seed)
    shapes = rng.standard_normal((50, int(0.6 * fps), 24)).astype(np.float32) * 3

    def norm(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=1, keepdims=True)
        return np.ascontiguousarray(x - x.mean(axis=0, keepdims=True), np.float32)
    originals = n - n // 10
    recs = []
    for i in range(originals):
        t = int(rng.uniform(10, 60) * fps)
        x = rng.standard_normal((t, 24)).astype(np.float32)
        species = rng.integers(0, 50, 2)
        for start in rng.integers(0, t - shapes.shape[1], max(1, t // int(2 * fps))):
            x[start : start + shapes.shape[1]] += shapes[rng.choice(species)]
        recs.append(Recording("X", f"r{i}", norm(x), 44100, f"r{i}"))
    planted = set()
    sources = rng.choice(originals, n - originals, replace=False)
    for i, k in zip(range(originals, n), sources):
        src = recs[int(k)]
        x = src.fp.copy()
        kind = i % 4
        if kind in (0, 3):  # trimmed
            a, b = int(rng.uniform(0, 4) * fps) * int(rng.integers(0, 2)), int(rng.uniform(0, 4) * fps)
            x = x[a : len(x) - b] if len(x) - a - b > 5 * fps else x
        if kind in (1, 3):  # re-encoded
            x = x + 0.1 * x.std() * rng.standard_normal(x.shape).astype(np.float32)
        if kind in (2, 3):  # resampled to 22.05 kHz: the top bands go quiet
            x[:, 20:] = x[:, 20:].min()
        recs.append(Recording("X", f"c{i}", norm(x), 22050 if kind >= 2 else 44100, f"c{i}"))
        planted.add(frozenset((src.filename, f"c{i}")))
    return recs, planted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--originals", type=int, default=20, help="original recordings per class")
    p.add_argument("--scale", default="", help="also time comparing this many synthetic recordings (comma-separated sizes)")
    p.add_argument("--all-pairs-up-to", type=int, default=5000, help="largest size also compared pair by pair")
    args = p.parse_args()
    s = SpecSettings()
    summary = summary_bands(s.to_dict(), FingerprintSettings())  # as the dedup stage: the bands below 8 kHz
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
        dups = find_duplicates(recs, s.sample_rate / s.hop_length / 4, show_progress=False, summary=summary)
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
        for n in map(int, args.scale.split(",")):
            recs, planted = synthetic(n, fps)
            for k in (16, 0) if n <= args.all_pairs_up_to else (16,):
                t = time.perf_counter()
                dups = find_duplicates(recs, fps, show_progress=False, neighbours=k, summary=summary)
                took = time.perf_counter() - t
                found = {frozenset((d.kept.filename, d.duplicate.filename)) for d in dups}
                hit = len(found & planted)
                p_, r_ = hit / max(len(found), 1), hit / len(planted)
                what = "every pair" if k == 0 else f"{k} neighbours"
                print(f"{n} recordings, {len(planted)} copies planted, {what}: {took:.1f} s, precision {p_:.3f}, "
                      f"recall {r_:.3f}")
                figures[f"scale_{n}_{'all_pairs' if k == 0 else 'neighbours'}"] = {
                    "seconds": round(took, 1), "precision": round(p_, 3), "recall": round(r_, 3)}
    record("dedup-accuracy", "Duplicate finding: planted copies of every kind", figures,
           command="python benchmarks/dedup_accuracy.py" + (f" --scale {args.scale} --all-pairs-up-to "
                                                            f"{args.all_pairs_up_to}" if args.scale else ""))


if __name__ == "__main__":
    main()
