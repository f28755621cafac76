"""Planted duplicates of every kind, for dedup tests and benchmarks/dedup_accuracy.py."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import soxr

from hawk.download.demo import synth_recording, write_audio

CALLS = {"AAAA": "whistle", "BBBB": "warble"}


def plant(root: Path, originals: int = 10, seed: int = 0) -> set[frozenset[tuple[str, str]]]:
    """Write originals for two classes plus copies; return the true duplicate groups."""
    rng = np.random.default_rng(seed)
    for code, call in CALLS.items():
        (root / code).mkdir(parents=True, exist_ok=True)
        for i in range(originals):
            sr = 44100
            write_audio(root / code / f"{code}{i}.wav", synth_recording(call, seed * 100 + i + zlib.crc32(code.encode()) % 50,
                                                                      float(rng.uniform(15, 40)), sr), sr)

    def load(code: str, i: int) -> tuple[np.ndarray, int]:
        import soundfile as sf

        x, sr = sf.read(root / code / f"{code}{i}.wav", dtype="float32")
        return x, sr

    groups: list[set[tuple[str, str]]] = []

    def group(*members: tuple[str, str]) -> None:
        groups.append(set(members))

    a = "AAAA"
    shutil.copy(root / a / "AAAA0.wav", root / a / "AAAA0_copy.wav")  # exact copy
    group((a, "AAAA0.wav"), (a, "AAAA0_copy.wav"))
    for k in (1, 2):  # exact triple
        shutil.copy(root / a / "AAAA1.wav", root / a / f"AAAA1_copy{k}.wav")
    group((a, "AAAA1.wav"), (a, "AAAA1_copy1.wav"), (a, "AAAA1_copy2.wav"))
    x, sr = load(a, 2)  # re-encodes
    write_audio(root / a / "AAAA2_re.mp3", x, sr)
    write_audio(root / a / "AAAA2_re.ogg", x, sr)
    write_audio(root / a / "AAAA2_re.m4a", x, sr)
    group((a, "AAAA2.wav"), (a, "AAAA2_re.mp3"), (a, "AAAA2_re.ogg"), (a, "AAAA2_re.m4a"))
    x, sr = load(a, 3)  # resampled
    write_audio(root / a / "AAAA3_22k.wav", soxr.resample(x, sr, 22050), 22050)
    write_audio(root / a / "AAAA3_32k.flac", soxr.resample(x, sr, 32000), 32000)
    group((a, "AAAA3.wav"), (a, "AAAA3_22k.wav"), (a, "AAAA3_32k.flac"))
    x, sr = load(a, 4)  # gain change
    write_audio(root / a / "AAAA4_quiet.wav", x * 0.25, sr)
    group((a, "AAAA4.wav"), (a, "AAAA4_quiet.wav"))
    x, sr = load(a, 5)  # trimmed at both ends, at either end alone
    write_audio(root / a / "AAAA5_trim.wav", x[int(2.3 * sr) : len(x) - int(1.7 * sr)], sr)
    write_audio(root / a / "AAAA5_head.wav", x[int(3.9 * sr) :], sr)
    write_audio(root / a / "AAAA5_tail.flac", x[: len(x) - int(3.1 * sr)], sr)
    group((a, "AAAA5.wav"), (a, "AAAA5_trim.wav"), (a, "AAAA5_head.wav"), (a, "AAAA5_tail.flac"))
    x, sr = load(a, 6)  # trimmed, resampled and re-encoded at once
    write_audio(root / a / "AAAA6_mix.mp3", soxr.resample(x[int(1.2 * sr) : len(x) - int(0.8 * sr)], sr, 32000) * 0.6,
                32000)
    group((a, "AAAA6.wav"), (a, "AAAA6_mix.mp3"))
    x, sr = load(a, 7)  # filed under another class, under another name and format
    write_audio(root / "BBBB" / "BBBB_misfiled.flac", x, sr)
    group((a, "AAAA7.wav"), ("BBBB", "BBBB_misfiled.flac"))
    return {frozenset(g) for g in groups}


def pairs(groups) -> set[frozenset]:
    out = set()
    for g in groups:
        members = sorted(g)
        out |= {frozenset((m, n)) for k, m in enumerate(members) for n in members[k + 1 :]}
    return out
