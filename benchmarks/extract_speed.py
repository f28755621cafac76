"""Extraction throughput (spectrograms/s) and memory, measured against the floor, side by side.

The floor is the bare minimum at HawkEars v1 settings in one process on one core: decode the whole
file, resample to 37120 Hz, one STFT/mel pass over the whole recording, slice the segments. hawk's
extract stage (streaming, SQLite writes, parallel workers) is timed on the same files in the same run.

    python benchmarks/extract_speed.py [--minutes 10] [--files 6] [--hour]

--hour also measures peak RSS of extracting one 1-hour recording with 1 worker (it must stay near the
size of one block of audio, not grow with the recording).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import soxr
import torch
import torchaudio

from hawk.download.demo import synth_recording, write_audio
from hawk.extract import extract_class
from hawk.spectrogram import SpecSettings
from results import record


def floor(paths: list[Path], s: SpecSettings) -> tuple[int, float]:
    """Bare steps, one core: decode, resample, one mel pass per recording, slice."""
    torch.set_num_threads(1)
    mel = torchaudio.transforms.MelSpectrogram(s.sample_rate, n_fft=s.n_fft, win_length=s.win_length,
                                               hop_length=s.hop_length, f_min=s.min_freq, f_max=s.max_freq,
                                               n_mels=s.spec_height, power=s.power)
    n, start = 0, time.perf_counter()
    for p in paths:
        x, sr = sf.read(p, dtype="float32")
        x = soxr.resample(x, sr, s.sample_rate, "HQ")
        spec = mel(torch.from_numpy(x))
        step = int(s.offset * s.sample_rate / s.hop_length)
        for f in range(0, spec.shape[1] - s.spec_width + 1, step):
            seg = spec[:, f : f + s.spec_width]
            _ = (seg / seg.max()).numpy()
            n += 1
    return n, time.perf_counter() - start


def hawk_rate(folder: Path, s: SpecSettings, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        r = extract_class(folder, Path(tmp) / "B.db", Path(tmp) / "B.csv", "Bench", "BENCH", s,
                          workers=workers, show_progress=False)
    return r.added_spectrograms, r.seconds


def hour_rss(tmp: Path, minutes: float) -> None:
    path = tmp / "hour.flac"
    sr = 32000
    with sf.SoundFile(path, "w", sr, 1, format="FLAC") as f:
        for i in range(int(minutes)):
            f.write(synth_recording("song", i, 60.0, sr))
    code = (
        "import sys; from pathlib import Path; from hawk.extract import extract_class;"
        "from hawk.spectrogram import SpecSettings;"
        f"d=Path('{tmp}/one'); d.mkdir(); Path('{path}').rename(d/'hour.flac');"
        f"r=extract_class(d, Path('{tmp}/h.db'), Path('{tmp}/h.csv'), 'H', 'H', SpecSettings(), workers=1, show_progress=False);"
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "print(r.added_spectrograms, round(r.seconds,1), int(hwm)//1024)"
    )
    n, secs, rss = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"{minutes:.0f}-minute recording, 1 worker: {n} spectrograms in {secs} s, peak RSS {rss} MiB")
    return int(rss)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2.0, help="length of each test recording")
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--hour", action="store_true")
    p.add_argument("--minutes-long", type=float, default=60.0, help="length of the --hour recording")
    args = p.parse_args()
    s = SpecSettings()
    figures, anchor = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt, sr in (("wav", 44100), ("mp3", 44100)):
            folder = tmp / fmt
            folder.mkdir()
            for i in range(args.files):
                write_audio(folder / f"r{i}.{fmt}", synth_recording("warble", i, args.minutes * 60, sr), sr)
            paths = sorted(folder.iterdir())
            n, t = floor(paths, s)
            print(f"{fmt}: floor (1 core, bare steps): {n / t:6.1f} spectrograms/s ({1000 * t / n:.1f} ms each)")
            anchor[f"{fmt}_floor_1_core_spectrograms_per_s"] = round(n / t, 1)
            torch.set_num_threads(1)  # "1 worker" means one core
            for workers in (1, 0):
                n2, t2 = hawk_rate(folder, s, workers)
                label = "1 worker" if workers == 1 else "all cores"
                print(f"{fmt}: hawk extract, {label:9}: {n2 / t2:6.1f} spectrograms/s ({n2} in {t2:.1f} s)")
                figures[f"{fmt}_{label.replace(' ', '_')}_spectrograms_per_s"] = round(n2 / t2, 1)
        if args.hour:
            figures[f"peak_rss_mib_{args.minutes_long:.0f}_minute_recording"] = hour_rss(tmp, args.minutes_long)
    record("extract-speed", "Extraction throughput (HawkEars v1 settings)", figures, anchor,
           command="python benchmarks/extract_speed.py" + (" --hour" if args.hour else ""),
           notes="The anchor is the floor: decode, resample, one mel pass and slicing on one core, in the same run.")


if __name__ == "__main__":
    main()
