"""The realistic benchmark kit: a seeded synthetic data set much harder than the demo.

The demo calls every 1-2.5 s over quiet noise, so nearly every 3-s segment holds its class and a
model scores 0.94 whatever the recipe. Real training recordings are not like that, and neither is
this kit:
- the focal bird sings in bouts with pauses, so many segments of a class's recordings hold no call;
- two call types per species, short (20-ms chips) and long (whistles, warbles, trills);
- confusable pairs: WHIS/WHIC (rising whistles of overlapping pitch) and CHIP/DZIT (short chips);
- secondary species in training files, unlabelled, as in Xeno-canto recordings;
- per-recording SNR from -6 to +20 dB over wind, rain, a stream, an insect chorus or plain noise;
- stereo files with a dead or a noisy channel; wav, flac, mp3, ogg and m4a at 22-48 kHz;
- test soundscapes with overlapping species and unannotated distractors (other birds, voices,
  engines, noise events), annotated per sound.

    python benchmarks/kit.py --out /tmp/kit [--recordings 7 --soundscapes 12 --seed 0]

Writes under --out: ``sources/<CODE>/`` (training recordings, one folder per class, for local
sources), ``test/recordings/`` and ``test/annotations.csv`` (recording,species,start_time,end_time),
``truth.csv`` (every call placed in every training recording: file, code, start, end, focal) and
``classes.yaml`` (the class list, conf/classes format).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hawk.download.demo import FORMATS, SYNTHS, background, place, tone, write_annotations, write_audio

Rng = np.random.Generator
Call = Callable[[Rng, int], np.ndarray]


def _sweep(lo: tuple[float, float], ratio: tuple[float, float], secs: tuple[float, float], harm: float = 0.25) -> Call:
    def call(rng: Rng, sr: int) -> np.ndarray:
        f0 = rng.uniform(*lo)
        return tone(np.linspace(f0, f0 * rng.uniform(*ratio), int(sr * rng.uniform(*secs))), sr, harm)
    return call


def _chips(n: tuple[int, int], f: tuple[float, float], drop: float, secs: float, gap: float, harm: float) -> Call:
    def call(rng: Rng, sr: int) -> np.ndarray:
        f0 = rng.uniform(*f)
        out = []
        for _ in range(int(rng.integers(n[0], n[1] + 1))):
            out += [tone(np.linspace(f0, f0 * drop, int(sr * secs)), sr, harm), np.zeros(int(sr * gap))]
        return np.concatenate(out[:-1])
    return call


def _buzz(rng: Rng, sr: int) -> np.ndarray:
    """A buzzy 'dzeet': band-limited noise 5-7 kHz, 0.15-0.25 s."""
    n = int(sr * rng.uniform(0.15, 0.25))
    spec = np.fft.rfft(rng.standard_normal(n))
    hz = np.fft.rfftfreq(n, 1 / sr)
    spec[(hz < 5000) | (hz > 7000)] = 0
    x = np.fft.irfft(spec, n)
    return np.hanning(n) * x / (np.abs(x).max() + 1e-9)


def _slow_trill(rng: Rng, sr: int) -> np.ndarray:
    f, rate = rng.uniform(3300, 3700), rng.uniform(8, 10)
    out = []
    for _ in range(int(rate * rng.uniform(0.8, 1.2))):
        out += [tone(np.linspace(f * 1.1, f, int(sr * 0.5 / rate)), sr, 0.2), np.zeros(int(sr * 0.5 / rate))]
    return np.concatenate(out)


def _chatter(rng: Rng, sr: int) -> np.ndarray:
    out = []
    for _ in range(int(rng.integers(6, 11))):
        f0 = rng.uniform(2500, 5000)
        out += [tone(np.linspace(f0, f0 * rng.uniform(0.8, 1.2), int(sr * 0.04)), sr, 0.8), np.zeros(int(sr * 0.03))]
    return np.concatenate(out)


def _hoot(rng: Rng, sr: int) -> np.ndarray:
    """A distractor: an owl-like low hoot series (not a class)."""
    f = rng.uniform(500, 700)
    note = tone(np.full(int(sr * 0.3), f), sr, 0.5)
    return np.concatenate([note, np.zeros(int(sr * 0.25))] * int(rng.integers(2, 5)))


def _croak(rng: Rng, sr: int) -> np.ndarray:
    """A distractor: a frog-like pulsed croak 1-2 kHz (not a class)."""
    f = rng.uniform(1000, 2000)
    pulse = tone(np.full(int(sr * 0.015), f), sr, 0.9)
    return np.concatenate([pulse, np.zeros(int(sr * 0.01))] * int(rng.integers(10, 25)))


# code -> (name, [call type A, call type B]); A is sung more often
BIRDS: dict[str, tuple[str, list[Call]]] = {
    "WHIS": ("Rising Whistler", [_sweep((1800, 2400), (1.6, 1.9), (0.35, 0.6)), SYNTHS["song"]]),
    "WHIC": ("Lesser Whistler", [_sweep((2000, 2600), (1.3, 1.5), (0.25, 0.45)),
                                  _sweep((2900, 3200), (0.55, 0.65), (0.35, 0.45))]),
    "CHIP": ("Chipper", [_chips((1, 1), (6800, 7200), 0.78, 0.02, 0.06, 0.1),
                         _chips((2, 2), (6800, 7200), 0.78, 0.02, 0.06, 0.1)]),
    "DZIT": ("Dzitter", [_chips((1, 1), (6200, 6700), 0.75, 0.03, 0.05, 0.6), _buzz]),
    "TRIL": ("Trilling Tinkler", [SYNTHS["trill"], _slow_trill]),
    "WARB": ("Wavy Warbler", [SYNTHS["warble"], _chatter]),
}
DISTRACTORS: list[Call] = [_hoot, _croak, SYNTHS["other"], _sweep((900, 1100), (1.1, 1.2), (0.6, 0.9))]


def _lowpass(x: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="same")


def noisy_background(rng: Rng, n: int, sr: int, kind: str, level: float) -> np.ndarray:
    """A background of ``kind`` (plain, wind, rain, stream, insects) at about ``level`` RMS."""
    base = background(rng, n, level)
    white = rng.standard_normal(n)
    if kind == "wind":
        gust = 0.4 + 0.6 * np.sin(np.linspace(0, np.pi * rng.uniform(2, 6), n)) ** 2
        return base + level * 6 * _lowpass(white, max(1, sr // 300)) * gust
    if kind == "rain":
        drops = np.zeros(n)
        idx = rng.integers(0, n, int(n / sr * rng.uniform(60, 200)))
        drops[idx] = rng.uniform(0.3, 1.0, len(idx))
        return base + level * 8 * np.convolve(drops, np.hanning(max(2, int(sr * 0.002))), mode="same")
    if kind == "stream":  # broadband rush, strongest below 3 kHz
        return base + level * 2.5 * (_lowpass(white, max(1, sr // 3000)) * 2 + 0.3 * white)
    if kind == "insects":  # a steady chorus near 4-6 kHz, amplitude-modulated
        t = np.arange(n) / sr
        f = rng.uniform(4200, 5800)
        am = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(20, 40) * t)
        return base + level * 1.5 * am * np.sin(2 * np.pi * f * t)
    return base


BACKGROUNDS = ("plain", "wind", "rain", "stream", "insects")


def _bouts(rng: Rng, seconds: float, pause: tuple[float, float]) -> list[tuple[float, int]]:
    """(time, call type) for a bird singing in bouts of 3-10 s separated by pauses."""
    out, t = [], rng.uniform(0.0, 4.0)
    while t < seconds - 1.0:
        kind = 0 if rng.random() < 0.7 else 1
        end = min(seconds - 1.0, t + rng.uniform(3.0, 10.0))
        while t < end:
            out.append((t, kind))
            t += rng.uniform(0.7, 2.0)
        t = end + rng.uniform(*pause)
    return out


def _put(signal: np.ndarray, sr: int, call: np.ndarray, t: float, gain: float) -> float:
    place(signal, call, int(t * sr), gain)
    return t + len(call) / sr


def _finish(signal: np.ndarray) -> np.ndarray:
    return (signal / max(1.0, np.abs(signal).max() / 0.9)).astype(np.float32)


def training_recording(code: str, rng: Rng, seconds: float, sr: int) -> tuple[np.ndarray, list[tuple]]:
    """One training recording of ``code`` and the calls in it: (code, start, end, focal)."""
    n = int(seconds * sr)
    level = rng.uniform(0.01, 0.04)
    signal = noisy_background(rng, n, sr, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], level)
    calls: list[tuple] = []
    if code == "Noise":
        return _finish(signal), calls
    if code == "Other":
        t = rng.uniform(0.0, 2.0)
        while t < seconds - 1.0:
            _put(signal, sr, DISTRACTORS[int(rng.integers(len(DISTRACTORS)))](rng, sr), t, level * rng.uniform(3, 15))
            t += rng.uniform(1.0, 5.0)
        return _finish(signal), calls
    snr = rng.uniform(-6.0, 20.0)
    types = BIRDS[code][1]
    for t, kind in _bouts(rng, seconds, (4.0, 14.0)):
        gain = level * 10 ** ((snr + rng.uniform(-4, 4)) / 20) * 4
        calls.append((code, t, _put(signal, sr, types[kind](rng, sr), t, gain), 1))
    if rng.random() < 0.5:  # a secondary species, quieter, at random times (pauses included)
        other = [c for c in BIRDS if c != code][int(rng.integers(len(BIRDS) - 1))]
        for _ in range(int(rng.integers(2, 6))):
            t = rng.uniform(0.0, seconds - 1.0)
            gain = level * 10 ** ((snr - 8 + rng.uniform(-4, 4)) / 20) * 4
            calls.append((other, t, _put(signal, sr, BIRDS[other][1][int(rng.random() < 0.3)](rng, sr), t, gain), 0))
    return _finish(signal), calls


def soundscape(rng: Rng, seconds: float, sr: int) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A test soundscape: 0-4 species singing independently (so calls overlap), distractors and
    noise events that are not annotated; returns the audio and its (code, start, end) annotations."""
    n = int(seconds * sr)
    level = rng.uniform(0.01, 0.03)
    signal = noisy_background(rng, n, sr, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], level)
    notes = []
    codes = list(BIRDS)
    for code in rng.choice(codes, int(rng.integers(0, 5)), replace=False):
        snr = rng.uniform(0.0, 18.0)
        for t, kind in _bouts(rng, seconds, (6.0, 25.0)):
            gain = level * 10 ** ((snr + rng.uniform(-4, 4)) / 20) * 4
            end = _put(signal, sr, BIRDS[code][1][kind](rng, sr), t, gain)
            notes.append((str(code), round(t, 3), round(min(end, seconds), 3)))
    for _ in range(int(rng.integers(3, 10))):
        t = rng.uniform(0.0, seconds - 2.0)
        _put(signal, sr, DISTRACTORS[int(rng.integers(len(DISTRACTORS)))](rng, sr), t, level * rng.uniform(3, 12))
    for _ in range(int(rng.integers(0, 3))):
        t = rng.uniform(0.0, seconds - 3.0)
        _put(signal, sr, SYNTHS["noise"](rng, sr), t, level * rng.uniform(2, 6))
    return _finish(signal), sorted(notes, key=lambda x: x[1])


def _stereo(signal: np.ndarray, rng: Rng, dead: bool) -> np.ndarray:
    if dead:
        return np.stack([np.zeros_like(signal), signal], axis=1)
    noisy = signal + rng.standard_normal(len(signal)).astype(np.float32) * 0.3
    return np.stack([signal, noisy / np.abs(noisy).max() * 0.9], axis=1)


def kit_under(work: Path, recordings: int = 7, soundscapes: int = 12, seed: int = 0) -> Path:
    """The kit of this design in ``work``, made on first use: one folder per seed and size, so a run
    with another seed never scores on a kit left by an earlier one."""
    kit = work / f"kit-seed{seed}-{recordings}x{soundscapes}"
    if not (kit / "classes.yaml").exists():
        print("kit:", make_kit(kit, recordings, soundscapes, seed))
    return kit


def make_kit(out: Path, recordings: int = 7, soundscapes: int = 12, seed: int = 0,
             seconds: tuple[float, float] = (25.0, 45.0), test_seconds: float = 60.0) -> dict[str, int]:
    """Write the kit under ``out`` (see the module docstring); returns counts."""
    truth = []
    classes = {**{c: n for c, (n, _) in BIRDS.items()}, "Noise": "Noise", "Other": "Other"}
    total = 0.0
    for ci, code in enumerate(classes):
        folder = out / "sources" / code
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(recordings):
            rng = np.random.default_rng([seed, ci, i])
            ext, sr, channels = FORMATS[(ci + i) % len(FORMATS)]
            dur = float(rng.uniform(*seconds))
            signal, calls = training_recording(code, rng, dur, sr)
            if channels == 2:
                signal = _stereo(signal, rng, dead=i % 2 == 0)
            name = f"{code}{i:03d}.{ext}"
            write_audio(folder / name, signal, sr)
            truth += [(name, c, round(a, 3), round(b, 3), f) for c, a, b, f in calls]
            total += dur
    test = out / "test" / "recordings"
    test.mkdir(parents=True, exist_ok=True)
    notes = []
    for i in range(soundscapes):
        rng = np.random.default_rng([seed, 999, i])
        signal, ann = soundscape(rng, test_seconds, 32000)
        stem = f"SITE{i:02d}"
        write_audio(test / f"{stem}.{'flac' if i % 2 else 'wav'}", signal, 32000)
        notes += [(stem, c, a, b) for c, a, b in ann]
    write_annotations(out / "test" / "annotations.csv", notes)
    with open(out / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "code", "start", "end", "focal"])
        w.writerows(truth)
    lines = [f"{code}:\n  name: {name}\n  sources:\n    - {{kind: local, path: {out / 'sources' / code}, mode: copy}}"
             for code, name in classes.items()]
    (out / "classes.yaml").write_text("# the benchmark kit (benchmarks/kit.py)\n" + "\n".join(lines) + "\n")
    return {"classes": len(classes), "recordings": recordings * len(classes), "training_seconds": int(total),
            "soundscapes": soundscapes, "annotations": len(notes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--recordings", type=int, default=7, help="training recordings per class")
    p.add_argument("--soundscapes", type=int, default=12, help="annotated test soundscapes of 60 s")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(make_kit(args.out.resolve(), args.recordings, args.soundscapes, args.seed))


if __name__ == "__main__":
    main()
