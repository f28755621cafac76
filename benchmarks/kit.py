"""The realistic benchmark kit: a seeded data set much harder than the demo.

The demo calls every 1-2.5 s over quiet noise, so nearly every 3-s segment holds its class and a
model scores 0.94 whatever the recipe. Real training recordings are not like that, and neither is
this kit:
- the focal bird sings in bouts with pauses, so many segments of a class's recordings hold no call;
- two call types per species, short (20-ms chips) and long (whistles, warbles, trills);
- confusable pairs: WHIS/WHIC (rising whistles), CHIP/DZIT and CHIP/SEEP (high chips), TRIL/TRIF
  (trills), CHUR and the frog-like croak of Other;
- secondary species in training files, unlabelled, as in Xeno-canto recordings;
- per-recording SNR from -6 to +20 dB;
- stereo files with a dead or a noisy channel; wav, flac, mp3, ogg and m4a at 22-48 kHz;
- test soundscapes with overlapping species and unannotated distractors, annotated per sound.

Two designs share that structure and the seed:
- ``recorded`` (the default): 10 bird classes over **recorded** backgrounds (rain, wind, forest day
  and night with real birds, campfire, a ship, workshops), recorded distractors (real birds, dogs,
  frogs, insects, cattle, machines) and recorded speech (voice notes in training files, people in
  soundscapes), cut from Debian packages by ``benchmarks/sounds.py`` (their licences are listed
  there and in the kit's README.md; the audio is never committed);
- ``synthetic``: the first kit, 6 bird classes over synthetic wind, rain, stream and insects with
  synthetic distractors, kept for comparison rows.

    python benchmarks/kit.py --out /tmp/kit [--design recorded --recordings 7 --soundscapes 12 --seed 0]

Writes under --out: ``sources/<CODE>/`` (training recordings, one folder per class, for local
sources), ``test/recordings/`` and ``test/annotations.csv`` (recording,species,start_time,end_time),
``truth.csv`` (every call placed in every training recording: file, code, start, end, focal; a
3-s window holds its class when a focal call of its class overlaps it), ``classes.yaml`` (the class
list, conf/classes format) and ``README.md`` (what is in it, and the recorded sounds' licences).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

import sounds as recorded

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
# the recorded design adds these, each confusable with a class above or with Other's croak
MORE_BIRDS: dict[str, tuple[str, list[Call]]] = {
    "PEWE": ("Two-note Peewee", [lambda rng, sr: np.concatenate(
        [_sweep((3400, 3800), (0.7, 0.8), (0.2, 0.3))(rng, sr), np.zeros(int(sr * 0.12)),
         _sweep((2700, 3000), (1.15, 1.25), (0.2, 0.3))(rng, sr)]), _sweep((3400, 3800), (0.75, 0.85), (0.3, 0.45))]),
    "SEEP": ("Thin Seeper", [_sweep((7800, 8400), (0.97, 1.03), (0.15, 0.3), 0.05),
                             _chips((2, 3), (7800, 8400), 0.95, 0.08, 0.08, 0.05)]),
    "CHUR": ("Churring Rail", [_chips((12, 20), (1300, 1900), 1.0, 0.02, 0.015, 0.9),
                               _sweep((1400, 1700), (0.8, 0.9), (0.4, 0.6), 0.6)]),
    "TRIF": ("Fast Trill", [_chips((14, 22), (4300, 4700), 0.9, 0.025, 0.02, 0.2), SYNTHS["chirp"]]),
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


@dataclass
class Recorded:
    """The recorded clips of ``benchmarks/sounds.py``, resampled once per sample rate."""
    clips: dict[str, list[np.ndarray]]
    _at: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)

    def pick(self, rng: Rng, kind: str, sr: int) -> np.ndarray:
        i = int(rng.integers(len(self.clips[kind])))
        if (kind, i, sr) not in self._at:
            x, g = self.clips[kind][i], gcd(sr, recorded.SR)
            self._at[kind, i, sr] = x if sr == recorded.SR else resample_poly(x, sr // g, recorded.SR // g)
        return self._at[kind, i, sr]

    def _layer(self, rng: Rng, n: int, sr: int) -> np.ndarray:
        """One ambience from a random point, looped with 50-ms crossfades and played 0.85-1.15 x as
        fast (so two recordings never share a stretch of identical background, which real ones
        never do and which dedup would rightly call a copy); unit RMS."""
        x = self.pick(rng, "bed", sr)
        speed = rng.uniform(0.85, 1.15)
        need = int(n * speed) + 2
        out, fade = x[int(rng.integers(len(x) // 2)):], min(int(0.05 * sr), len(x) // 4)
        ramp = np.linspace(0.0, 1.0, fade)
        while len(out) < need:
            out = np.concatenate([out[:-fade], out[-fade:] * (1 - ramp) + x[:fade] * ramp, x[fade:]])
        out = np.interp(np.arange(n) * speed, np.arange(need), out[:need])
        return out / (np.sqrt(np.mean(out ** 2)) + 1e-9)

    def bed(self, rng: Rng, n: int, sr: int, level: float) -> np.ndarray:
        """A recorded background at about ``level`` to 2 x ``level`` RMS: one ambience, a second one
        quieter beneath it, and a little plain noise."""
        main, under = self._layer(rng, n, sr), self._layer(rng, n, sr)
        return background(rng, n, level * 0.3) + level * rng.uniform(0.7, 2.0) * (main + rng.uniform(0.2, 0.5) * under)


def _bed(rng: Rng, n: int, sr: int, level: float, sounds: Recorded | None) -> np.ndarray:
    if sounds is None:
        return noisy_background(rng, n, sr, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], level)
    return sounds.bed(rng, n, sr, level)


def _distractor(rng: Rng, sr: int, sounds: Recorded | None) -> np.ndarray:
    if sounds is not None and rng.random() < 0.7:
        return sounds.pick(rng, "event", sr)
    return DISTRACTORS[int(rng.integers(len(DISTRACTORS)))](rng, sr)


def _voice(signal: np.ndarray, rng: Rng, sr: int, sounds: Recorded, level: float, t: float) -> None:
    """A person speaking from ``t``: one to three phrases, as a recordist's voice note or passers-by."""
    gain = level * rng.uniform(5, 20)
    for _ in range(int(rng.integers(1, 4))):
        t = _put(signal, sr, sounds.pick(rng, "speech", sr), t, gain) + rng.uniform(0.2, 0.8)


def training_recording(code: str, rng: Rng, seconds: float, sr: int, birds: dict | None = None,
                       sounds: Recorded | None = None) -> tuple[np.ndarray, list[tuple]]:
    """One training recording of ``code`` and the calls in it: (code, start, end, focal). With
    recorded ``sounds``: recorded background, and recorded distractors and voice notes in some files."""
    birds = birds or BIRDS
    n = int(seconds * sr)
    level = rng.uniform(0.01, 0.04)
    signal = _bed(rng, n, sr, level, sounds)
    calls: list[tuple] = []
    if code == "Other":
        t = rng.uniform(0.0, 2.0)
        while t < seconds - 1.0:
            _put(signal, sr, _distractor(rng, sr, sounds), t, level * rng.uniform(3, 15))
            t += rng.uniform(1.0, 5.0)
    elif code != "Noise":
        snr = rng.uniform(-6.0, 20.0)
        types = birds[code][1]
        for t, kind in _bouts(rng, seconds, (4.0, 14.0)):
            gain = level * 10 ** ((snr + rng.uniform(-4, 4)) / 20) * 4
            calls.append((code, t, _put(signal, sr, types[kind](rng, sr), t, gain), 1))
        if rng.random() < 0.5:  # a secondary species, quieter, at random times (pauses included)
            other = [c for c in birds if c != code][int(rng.integers(len(birds) - 1))]
            for _ in range(int(rng.integers(2, 6))):
                t = rng.uniform(0.0, seconds - 1.0)
                gain = level * 10 ** ((snr - 8 + rng.uniform(-4, 4)) / 20) * 4
                calls.append((other, t, _put(signal, sr, birds[other][1][int(rng.random() < 0.3)](rng, sr), t, gain), 0))
        if sounds is not None and rng.random() < 0.4:  # a dog, a cow, another real bird, a machine
            for _ in range(int(rng.integers(1, 5))):
                _put(signal, sr, sounds.pick(rng, "event", sr), rng.uniform(0.0, seconds - 1.0), level * rng.uniform(3, 15))
    if sounds is not None and rng.random() < (0.6 if code == "Noise" else 0.3):
        _voice(signal, rng, sr, sounds, level, rng.uniform(0.0, 2.0) if rng.random() < 0.5 else seconds - 6.0)
    return _finish(signal), calls


def soundscape(rng: Rng, seconds: float, sr: int, birds: dict | None = None,
               sounds: Recorded | None = None) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A test soundscape: 0-4 species singing independently (so calls overlap), distractors and
    noise events (and, with recorded ``sounds``, people talking) that are not annotated; returns the
    audio and its (code, start, end) annotations."""
    birds = birds or BIRDS
    n = int(seconds * sr)
    level = rng.uniform(0.01, 0.03)
    signal = _bed(rng, n, sr, level, sounds)
    notes = []
    codes = list(birds)
    for code in rng.choice(codes, int(rng.integers(0, 5)), replace=False):
        snr = rng.uniform(0.0, 18.0)
        for t, kind in _bouts(rng, seconds, (6.0, 25.0)):
            gain = level * 10 ** ((snr + rng.uniform(-4, 4)) / 20) * 4
            end = _put(signal, sr, birds[code][1][kind](rng, sr), t, gain)
            notes.append((str(code), round(t, 3), round(min(end, seconds), 3)))
    for _ in range(int(rng.integers(3, 10))):
        t = rng.uniform(0.0, seconds - 2.0)
        _put(signal, sr, _distractor(rng, sr, sounds), t, level * rng.uniform(3, 12))
    for _ in range(int(rng.integers(0, 3))):
        t = rng.uniform(0.0, seconds - 3.0)
        _put(signal, sr, SYNTHS["noise"](rng, sr), t, level * rng.uniform(2, 6))
    if sounds is not None:
        for _ in range(int(rng.integers(0, 3))):
            _voice(signal, rng, sr, sounds, level, rng.uniform(0.0, seconds - 6.0))
    return _finish(signal), sorted(notes, key=lambda x: x[1])


def _stereo(signal: np.ndarray, rng: Rng, dead: bool) -> np.ndarray:
    if dead:
        return np.stack([np.zeros_like(signal), signal], axis=1)
    noisy = signal + rng.standard_normal(len(signal)).astype(np.float32) * 0.3
    return np.stack([signal, noisy / np.abs(noisy).max() * 0.9], axis=1)


DESIGNS = ("recorded", "synthetic")
SOUNDS = Path.home() / ".cache" / "hawk" / "kit-sounds"


def kit_under(work: Path, recordings: int = 7, soundscapes: int = 12, seed: int = 0, design: str = "recorded",
              sounds: Path = SOUNDS) -> Path:
    """The kit of this design in ``work``, made on first use: one folder per design, seed and size,
    so a run with another seed never scores on a kit left by an earlier one."""
    kit = work / f"kit-{design}-seed{seed}-{recordings}x{soundscapes}"
    if not (kit / "classes.yaml").exists():
        print("kit:", make_kit(kit, recordings, soundscapes, seed, design=design, sounds=sounds))
    return kit


def add_kit_arguments(p: argparse.ArgumentParser) -> None:
    """The options that name a kit, shared by every benchmark that runs on one."""
    p.add_argument("--design", choices=DESIGNS, default="recorded", help="the kit's design (see benchmarks/kit.py)")
    p.add_argument("--sounds", type=Path, default=SOUNDS, help="the recorded sounds' cache (benchmarks/sounds.py)")
    p.add_argument("--recordings", type=int, default=7, help="training recordings per class")
    p.add_argument("--soundscapes", type=int, default=12, help="annotated test soundscapes of 60 s")
    p.add_argument("--seed", type=int, default=0, help="the kit's seed (another kit of the same design)")


def kit_from(work: Path, args: argparse.Namespace) -> Path:
    """The kit the options of :func:`add_kit_arguments` name, under ``work``."""
    return kit_under(work, args.recordings, args.soundscapes, args.seed, args.design, args.sounds.expanduser().resolve())


def make_kit(out: Path, recordings: int = 7, soundscapes: int = 12, seed: int = 0,
             seconds: tuple[float, float] = (25.0, 45.0), test_seconds: float = 60.0, design: str = "recorded",
             sounds: Path = SOUNDS) -> dict[str, int]:
    """Write the kit under ``out`` (see the module docstring); returns counts. The recorded design
    fetches its sounds into ``sounds`` first (``benchmarks/sounds.py``)."""
    if design not in DESIGNS:
        raise ValueError(f"kit design {design!r}: expected one of {', '.join(DESIGNS)}")
    birds, clips = _cast(design, sounds)
    truth = []
    classes = {**{c: n for c, (n, _) in birds.items()}, "Noise": "Noise", "Other": "Other"}
    total = 0.0
    for ci, code in enumerate(classes):
        folder = out / "sources" / code
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(recordings):
            rng = np.random.default_rng([seed, ci, i])
            ext, sr, channels = FORMATS[(ci + i) % len(FORMATS)]
            dur = float(rng.uniform(*seconds))
            signal, calls = training_recording(code, rng, dur, sr, birds, clips)
            if channels == 2:
                signal = _stereo(signal, rng, dead=i % 2 == 0)
            name = f"{code}{i:03d}.{ext}"
            write_audio(folder / name, signal, sr)
            truth += [(name, c, round(a, 3), round(b, 3), f) for c, a, b, f in calls]
            total += dur
    notes = _soundscapes(out / "test", soundscapes, [seed, 999], "SITE", test_seconds, birds, clips)
    with open(out / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "code", "start", "end", "focal"])
        w.writerows(truth)
    counts = {"classes": len(classes), "recordings": recordings * len(classes), "training_seconds": int(total),
              "soundscapes": soundscapes, "annotations": len(notes)}
    readme = [f"# hawk benchmark kit: {design} design, seed {seed}", "", "Made by `benchmarks/kit.py` "
              "(its docstring says what is in it).", "", *(f"- {k}: {v}" for k, v in counts.items())]
    if clips:
        readme += ["", "## Recorded sounds and their licences", "", (sounds / "README.md").read_text(),
                   f"Each clip's package, version, licence and path: `{sounds / 'index.csv'}`; the packages' "
                   f"copyright files: `{sounds / 'licences'}`."]
    (out / "README.md").write_text("\n".join(readme) + "\n", encoding="utf-8")
    lines = [f"{code}:\n  name: {name}\n  sources:\n    - {{kind: local, path: {out / 'sources' / code}, mode: copy}}"
             for code, name in classes.items()]
    (out / "classes.yaml").write_text("# the benchmark kit (benchmarks/kit.py)\n" + "\n".join(lines) + "\n")
    return counts


def _cast(design: str, sounds: Path) -> tuple[dict, Recorded | None]:
    """The design's bird classes and its recorded sounds (None for the synthetic design)."""
    clips = Recorded(recorded.load(recorded.fetch(sounds))) if design == "recorded" else None
    return ({**BIRDS, **MORE_BIRDS} if clips else BIRDS), clips


def _soundscapes(out: Path, count: int, seed: list[int], prefix: str, seconds: float, birds: dict,
                 clips: Recorded | None) -> list[tuple[str, str, float, float]]:
    """``count`` soundscapes into ``out/recordings/`` with their per-sound ``out/annotations.csv``."""
    folder = out / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    notes = []
    for i in range(count):
        signal, ann = soundscape(np.random.default_rng([*seed, i]), seconds, 32000, birds, clips)
        stem = f"{prefix}{i:02d}"
        write_audio(folder / f"{stem}.{'flac' if i % 2 else 'wav'}", signal, 32000)
        notes += [(stem, c, a, b) for c, a, b in ann]
    write_annotations(out / "annotations.csv", notes)
    return notes


def field_recordings(kit: Path, count: int = 12, seed: int = 0, design: str = "recorded", sounds: Path = SOUNDS,
                     seconds: float = 60.0) -> Path:
    """``kit/field/``: soundscapes like the test ones but never scored, the user's "own recordings" of
    the agile loop's field queue (``infer.input``); their ``annotations.csv`` is for a simulated
    reviewer only. Other seeds than the test soundscapes', made once."""
    out = kit / "field"
    if not (out / "annotations.csv").exists():
        birds, clips = _cast(design, sounds)
        _soundscapes(out, count, [seed, 998], "FIELD", seconds, birds, clips)
    return out / "recordings"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    add_kit_arguments(p)
    args = p.parse_args()
    print(make_kit(args.out.resolve(), args.recordings, args.soundscapes, args.seed, design=args.design,
                   sounds=args.sounds.expanduser().resolve()))


if __name__ == "__main__":
    main()
