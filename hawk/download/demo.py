"""The demo source: deterministic synthetic recordings, so the whole pipeline runs offline.

Each demo class has a call type that looks like a bird call in a spectrogram (a rising whistle, a
falling chirp series, a trill, a warble, a two-note song), varied in pitch, length and loudness, laid
over background noise. Noise (wind, rain) and Other (engine hum, voice-like harmonics) are there too.
Files come in mixed formats and sample rates, some stereo with one noisy channel, exactly what the
extract stage meets in real data. Annotated soundscapes mix calls of several classes for testing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from hawk.fsutil import atomic_open

CALLS = ("whistle", "chirp", "trill", "warble", "song", "noise", "other")
# (extension, sample rate, channels): cycled through per recording
FORMATS = (
    ("wav", 44100, 1), ("flac", 32000, 1), ("mp3", 22050, 1), ("ogg", 48000, 1),
    ("m4a", 44100, 1), ("wav", 48000, 2), ("flac", 24000, 1), ("mp3", 44100, 2),
)
Synth = Callable[[np.random.Generator, int], np.ndarray]


def tone(freqs: np.ndarray, sr: int, harmonics: float = 0.25) -> np.ndarray:
    """A Hann-enveloped tone following ``freqs`` (Hz per sample), with a second harmonic."""
    phase = 2 * np.pi * np.cumsum(freqs) / sr
    env = np.hanning(len(freqs))
    return env * (np.sin(phase) + harmonics * np.sin(2 * phase))


def _whistle(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(sr * rng.uniform(0.35, 0.6))
    f0 = rng.uniform(1800, 2400)
    return tone(np.linspace(f0, f0 * rng.uniform(1.6, 1.9), n), sr)


def _chirp(rng: np.random.Generator, sr: int) -> np.ndarray:
    out = []
    f0 = rng.uniform(6000, 7000)
    for _ in range(rng.integers(3, 6)):
        n = int(sr * rng.uniform(0.06, 0.09))
        out += [tone(np.linspace(f0, f0 * 0.5, n), sr), np.zeros(int(sr * rng.uniform(0.05, 0.09)))]
    return np.concatenate(out)


def _trill(rng: np.random.Generator, sr: int) -> np.ndarray:
    f = rng.uniform(4500, 5200)
    rate = rng.uniform(16, 22)
    out = []
    for _ in range(int(rate * rng.uniform(0.8, 1.3))):
        out += [tone(np.full(int(sr * 0.5 / rate), f), sr, 0.1), np.zeros(int(sr * 0.5 / rate))]
    return np.concatenate(out)


def _warble(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(sr * rng.uniform(0.7, 1.0))
    t = np.arange(n) / sr
    centre, depth, rate = rng.uniform(2800, 3300), rng.uniform(500, 800), rng.uniform(7, 10)
    return tone(centre + depth * np.sin(2 * np.pi * rate * t), sr, 0.4)


def _song(rng: np.random.Generator, sr: int) -> np.ndarray:
    hi, lo = rng.uniform(3800, 4200), rng.uniform(2500, 2800)
    note = int(sr * rng.uniform(0.18, 0.25))
    gap = np.zeros(int(sr * 0.08))
    return np.concatenate([tone(np.full(note, hi), sr), gap, tone(np.full(note, lo), sr)] * 2)


def _noise(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(sr * rng.uniform(1.5, 3.0))
    white = rng.standard_normal(n)
    if rng.random() < 0.5:  # wind: low-passed gusts
        k = int(sr / 400)
        wind = np.convolve(white, np.ones(k) / k, mode="same") * 4
        return wind * (0.5 + 0.5 * np.sin(np.linspace(0, np.pi * rng.uniform(1, 3), n)) ** 2)
    drops = np.zeros(n)  # rain: sparse broadband clicks
    idx = rng.integers(0, n, int(n / sr * 120))
    drops[idx] = rng.uniform(0.5, 1.0, len(idx))
    return np.convolve(drops, np.hanning(int(sr * 0.002)), mode="same") + 0.05 * white


def _other(rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(sr * rng.uniform(1.0, 2.5))
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 140) if rng.random() < 0.5 else rng.uniform(160, 240)  # engine or voice
    wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
    return np.hanning(n) * wave * 0.4


SYNTHS: dict[str, Synth] = {
    "whistle": _whistle, "chirp": _chirp, "trill": _trill, "warble": _warble, "song": _song,
    "noise": _noise, "other": _other,
}


def background(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
    """White plus pink-ish noise at roughly ``level`` RMS."""
    pink = np.cumsum(rng.standard_normal(n)) * 0.002
    pink -= np.convolve(pink, np.ones(512) / 512, mode="same")
    return level * (rng.standard_normal(n) * 0.3 + pink)


def place(signal: np.ndarray, call: np.ndarray, at: int, gain: float) -> None:
    """Add ``call`` x ``gain`` into ``signal`` at sample ``at``, cut at the end."""
    end = min(len(signal), at + len(call))
    signal[at:end] += gain * call[: end - at]


def synth_recording(call: str, seed: int, seconds: float, sr: int) -> np.ndarray:
    """One recording of ``call`` repeated at random times over background noise (mono float32)."""
    if call not in SYNTHS:
        raise ValueError(f"unknown demo call {call!r}; expected one of {', '.join(CALLS)}")
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    signal = background(rng, n, rng.uniform(0.01, 0.03))
    t = rng.uniform(0.1, 0.8)
    while t < seconds - 0.5:
        place(signal, SYNTHS[call](rng, sr), int(t * sr), rng.uniform(0.15, 0.5))
        t += rng.uniform(1.0, 2.5)
    return (signal / max(1.0, np.abs(signal).max() / 0.9)).astype(np.float32)


def write_audio(path: Path, signal: np.ndarray, sr: int) -> None:
    """Write mono or (n, channels) audio in the format the extension names, atomically."""
    ext = path.suffix.lower()
    if ext in (".m4a", ".aac", ".mp4"):
        with atomic_open(path, "wb") as f:
            _write_aac(f, signal, sr)
        return
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[ext]
    subtype = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III", "FLAC": "PCM_16", "WAV": "PCM_16"}[fmt]
    with atomic_open(path, "wb") as f:
        sf.write(f, signal, sr, format=fmt, subtype=subtype)


def _write_aac(f, signal: np.ndarray, sr: int) -> None:
    import av

    data = signal if signal.ndim == 2 else signal[:, None]
    layout = "mono" if data.shape[1] == 1 else "stereo"
    with av.open(f, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def make_demo_recordings(
    out_dir: Path, call: str, count: int, seed: int, seconds: tuple[float, float] = (8.0, 14.0)
) -> list[dict[str, object]]:
    """Write ``count`` recordings of ``call`` into ``out_dir``; return their manifest rows."""
    rows = []
    for i in range(count):
        ext, sr, channels = FORMATS[(i + seed) % len(FORMATS)]
        rec_seed = seed * 1000 + i
        dur = float(np.random.default_rng(rec_seed).uniform(*seconds))
        signal = synth_recording(call, rec_seed, dur, sr)
        if channels == 2:  # second channel much noisier: the stereo rule must keep the first
            noisy = signal + np.random.default_rng(rec_seed + 1).standard_normal(len(signal)).astype(np.float32) * 0.3
            signal = np.stack([signal, noisy / np.abs(noisy).max() * 0.9], axis=1)
        name = f"DEMO{seed:02d}{i:03d}.{ext}"
        path = out_dir / name
        if not path.exists():
            write_audio(path, signal, sr)
        rows.append({"file": name, "id": name.split(".")[0], "source": "demo", "url": "", "license": "CC0",
                     "recordist": "hawk demo generator", "species": call, "quality": "A",
                     "duration": round(dur, 2)})
    return rows


def make_soundscapes(
    out_dir: Path, calls: dict[str, str], count: int, seed: int, seconds: float = 30.0, sr: int = 32000
) -> list[tuple[str, str, float, float]]:
    """Annotated test soundscapes: calls of several classes at known times. Writes the audio files and
    returns per-sound annotations (recording stem, class code, start, end)."""
    annotations = []
    codes = sorted(calls)
    for i in range(count):
        rng = np.random.default_rng(seed * 7919 + i)
        signal = background(rng, int(seconds * sr), 0.02)
        t = rng.uniform(0.2, 1.0)
        stem = f"SOUNDSCAPE{i:02d}"
        while t < seconds - 3.0:
            code = codes[int(rng.integers(len(codes)))]
            call = SYNTHS[calls[code]](rng, sr)
            place(signal, call, int(t * sr), rng.uniform(0.2, 0.5))
            annotations.append((stem, code, round(t, 3), round(t + len(call) / sr, 3)))
            t += len(call) / sr + rng.uniform(0.5, 3.0)
        write_audio(out_dir / f"{stem}.flac", (signal / max(1.0, np.abs(signal).max() / 0.9)).astype(np.float32), sr)
    return annotations


def write_annotations(path: Path, rows: list[tuple[str, str, float, float]]) -> None:
    """Per-sound annotations in the seed's format: recording,species,start_time,end_time."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["recording", "species", "start_time", "end_time"])
        w.writerows(rows)
