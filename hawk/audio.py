"""Audio decoding: any format a field recordist has, streamed in blocks, as mono at one sample rate.

soundfile (libsndfile) reads wav, flac, ogg and mp3; PyAV (bundled FFmpeg) reads m4a/aac and anything
else. Blocks keep memory flat on hour-long recordings; soxr resamples them as one continuous stream, so
block edges leave no trace in the signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hawk.errors import HawkError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".mp4", ".opus", ".wma", ".aif", ".aiff")
RESAMPLER_WARMUP = 3.0  # seconds decoded before a part of a stream, so the resampler's fresh start never reaches it
_SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}


class AudioError(HawkError):
    """A file that cannot be used as audio; ``str()`` names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    duration: float  # seconds, as the container reports it (0 when unknown)


def not_audio(content_type: str, head: bytes) -> str:
    """Why a downloaded body is not a recording ("" when it may be one): a server that answers a file
    URL with a web page (a login, a maintenance notice, an error) often says 200."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("text/") or kind in ("application/json", "application/xml", "application/xhtml+xml"):
        return f"served {kind}, not audio"
    if head.lstrip()[:1] in (b"<", b"{"):
        return "served a web page or JSON, not audio"
    return ""


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _soundfile_blocks(path: Path, block_seconds: float, skip: int = 0) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    f = sf.SoundFile(str(path))
    info = AudioInfo(f.samplerate, f.channels, f.frames / f.samplerate if f.frames > 0 else 0.0)
    block_frames = max(1, int(block_seconds * f.samplerate))

    def gen() -> Iterator[np.ndarray]:
        with f:
            if skip and f.seekable():
                f.seek(min(skip, f.frames))
            elif skip:
                f.read(skip, dtype="float32")
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield block

    return info, gen()


def _av_blocks(path: Path, block_seconds: float, skip: int = 0) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    import av  # imported here: only m4a/aac and odd formats need FFmpeg

    container = av.open(str(path))
    if not container.streams.audio:
        container.close()
        raise AudioError(path, "no audio stream")
    stream = container.streams.audio[0]
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    channels = int(stream.codec_context.channels or 0)
    if rate <= 0 or channels <= 0:
        container.close()
        raise AudioError(path, "no sample rate or channel count in the audio stream")
    duration = float(container.duration / 1_000_000) if container.duration else 0.0
    block_frames = max(1, int(block_seconds * rate))
    resampler = av.AudioResampler(format="fltp")

    def gen() -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        have, dropped = 0, 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().T
                        if dropped < skip:  # FFmpeg's seeks land on packets, not samples: decode and drop
                            cut = min(skip - dropped, len(samples))
                            samples, dropped = samples[cut:], dropped + cut
                        if not len(samples):
                            continue
                        pending.append(samples)
                        have += pending[-1].shape[0]
                        if have >= block_frames:
                            buf = np.concatenate(pending)
                            yield buf
                            pending, have = [], 0
            if pending:
                yield np.concatenate(pending)
        finally:
            container.close()

    return AudioInfo(rate, channels, duration), gen()


def open_blocks(path: str | Path, block_seconds: float = 60.0, skip: int = 0) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Open ``path`` and return its info and an iterator of (frames, channels) float32 blocks, from
    frame ``skip`` of the file on."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    errors = []
    backends = (_soundfile_blocks, _av_blocks) if path.suffix.lower() in _SOUNDFILE_EXTENSIONS else (_av_blocks,)
    for backend in backends:
        try:
            return backend(path, block_seconds, skip)
        except AudioError:
            raise
        except Exception as e:  # each backend has its own error types; all mean "cannot decode"
            errors.append(f"{type(e).__name__}: {e}".strip())
    raise AudioError(path, "not readable as audio (" + "; ".join(errors) + ")")


def duration(path: str | Path) -> float:
    """Seconds as the container reports them, nothing decoded; 0 when unknown or unreadable."""
    try:
        info, blocks = open_blocks(path)
    except AudioError:
        return 0.0
    blocks.close()
    return info.duration


def noise_level(signal: np.ndarray, n_fft: int = 512) -> float:
    """Mean magnitude relative to the peak: high for broadband noise, low for clean calls, 0 for silence."""
    if len(signal) < n_fft or not np.any(signal):
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(signal, n_fft)[:: n_fft // 2]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    peak = mag.max()
    return float(mag.mean() / peak) if peak > 0 else 0.0


def choose_channel(block: np.ndarray, sample_rate: int, check_seconds: float = 3.0) -> int:
    """HawkEars' stereo rule: keep the channel that looks less noisy over the first seconds
    (after skipping the first one), and never a channel that is all zeros."""
    if block.shape[1] == 1:
        return 0
    start = min(sample_rate, max(0, block.shape[0] - int(check_seconds * sample_rate)))
    window = block[start : start + int(check_seconds * sample_rate)]
    live = [c for c in range(block.shape[1]) if np.any(block[:, c])]
    if not live:
        return 0
    return min(live, key=lambda c: noise_level(window[:, c]))


def _nonfinite_error(path: str | Path, bad: int, seen: int, rest: Iterator[np.ndarray]) -> AudioError:
    """Count the rest of the file too, so the report says how much of it is NaN or infinite."""
    for block in rest:
        bad += block.size - int(np.count_nonzero(np.isfinite(block)))
        seen += block.size
    share = "all" if bad == seen else f"{bad} of"
    return AudioError(path, f"non-finite samples ({share} {seen} samples are NaN or infinite)")


def iter_mono(
    path: str | Path, sample_rate: int, block_seconds: float = 60.0, check_seconds: float = 3.0, start: float = 0.0
) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Stream ``path`` as mono float32 blocks at ``sample_rate``, one channel chosen for stereo.

    A file with any NaN or infinite sample (a float WAV written by a broken tool) raises
    :class:`AudioError` naming how many: such samples would turn every spectrogram they touch into
    garbage, so the recording is skipped (and reported) rather than patched.

    ``start`` (seconds) begins the stream part-way, on the same channel the whole stream would use.
    Where ``start`` falls on a sample of the file, decoding begins there; the resampler then starts
    fresh, so its first milliseconds differ slightly from the whole stream's (callers that need
    equality start a few seconds early and drop them). Elsewhere the file is decoded from its start."""
    info, blocks = open_blocks(path, block_seconds)
    channel: int | None = None
    drop = 0  # output samples to drop (start not on a sample of the file)
    if start > 0:
        if info.channels > 1:  # the whole stream's choice, made on its first block
            channel = choose_channel(next(blocks, np.zeros((0, info.channels), np.float32)), info.sample_rate,
                                     check_seconds)
        blocks.close()
        skip = start * info.sample_rate
        if abs(skip - round(skip)) < 1e-6:
            info, blocks = open_blocks(path, block_seconds, int(round(skip)))
        else:
            info, blocks = open_blocks(path, block_seconds)
            drop = int(round(start * sample_rate))

    def gen() -> Iterator[np.ndarray]:
        nonlocal channel, drop
        stream = None
        seen = 0
        try:
            for block in blocks:
                bad = block.size - int(np.count_nonzero(np.isfinite(block)))
                seen += block.size
                if bad:
                    raise _nonfinite_error(path, bad, seen, blocks)
                if channel is None:
                    channel = choose_channel(block, info.sample_rate, check_seconds)
                mono = np.ascontiguousarray(block[:, channel])
                if info.sample_rate != sample_rate:
                    if stream is None:
                        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
                    mono = stream.resample_chunk(mono)
                if drop:
                    mono, drop = mono[drop:], max(0, drop - len(mono))
                if len(mono):
                    yield mono
            if stream is not None:
                tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)[drop:]
                if len(tail):
                    yield tail
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(path, f"decoding failed part-way ({type(e).__name__}: {e})") from e

    return info, gen()


def read_clip(path: str | Path, sample_rate: int, start: float, seconds: float) -> np.ndarray:
    """``seconds`` of mono audio from ``start`` (clipped to the recording), decoding only up to its end."""
    first, last = int(max(0.0, start) * sample_rate), int(max(0.0, start + seconds) * sample_rate)
    _, blocks = iter_mono(path, sample_rate, block_seconds=10.0)
    parts, pos = [], 0
    for block in blocks:
        lo, hi = max(first - pos, 0), min(last - pos, len(block))
        if lo < hi:
            parts.append(block[lo:hi])
        pos += len(block)
        if pos >= last:
            blocks.close()  # stops decoding the rest of a long recording
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def read_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """Whole recording as one mono array (for short files: tests, plots, queries)."""
    _, blocks = iter_mono(path, sample_rate)
    parts = list(blocks)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
