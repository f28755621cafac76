"""Spectrograms the HawkEars way, computed in one streaming STFT pass over a whole recording.

HawkEars v1 settings are the defaults: 3 s segments at 37120 Hz, 192 mel bins (200-13000 Hz) by 384
frames, win_length 2048, n_fft 4096, hop 290, magnitude (power 1). Each spectrogram is divided by its
own max and stored as uint8 x 255, zlib-compressed. Segments start every ``offset`` seconds (1.5 s by
default, the seed's ``--offset``); with these settings a 1.5 s step is exactly 192 frames, so segments
are slices of one frame sequence rather than separate STFTs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from hawk.settings import from_mapping

FRAMES_PER_CHUNK = 256  # STFT frames transformed at once on the CPU: their complex spectra fit in cache


@dataclass(frozen=True)
class SpecSettings:
    segment_len: float = 3.0  # seconds per spectrogram
    sample_rate: int = 37120  # audio is resampled to this rate first
    spec_height: int = 192  # frequency bins
    spec_width: int = 384  # time frames (spec_width * hop_length ~ segment_len * sample_rate)
    win_length: int = 2048
    n_fft: int = 4096
    hop_length: int = 290
    min_freq: float = 200.0
    max_freq: float = 13000.0
    mel_scale: bool = True  # False: linear frequency bins between min_freq and max_freq
    power: float = 1.0  # 1 = magnitude, 2 = power
    offset: float = 1.5  # seconds between segment starts
    check_seconds: float = 3.0  # seconds looked at to pick the cleaner stereo channel
    block_seconds: float = 60.0  # audio decoded and transformed at once; bounds memory
    compress_level: int = 1  # zlib level; any level decompresses the same way

    @classmethod
    def from_mapping(cls, cfg: Any) -> "SpecSettings":
        """Build from a config mapping, refusing unknown keys so typos do not pass silently."""
        s = from_mapping(cls, cfg, "audio")
        if s.win_length > s.n_fft:
            raise ValueError(f"audio.win_length ({s.win_length}) exceeds audio.n_fft ({s.n_fft})")
        if not 0 <= s.min_freq < s.max_freq <= s.sample_rate / 2:
            raise ValueError("audio: need 0 <= min_freq < max_freq <= sample_rate / 2")
        if s.offset <= 0 or s.segment_len <= 0:
            raise ValueError("audio.offset and audio.segment_len must be positive")
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that change spectrogram content (not memory or compression knobs)."""
        d = self.to_dict()
        for key in ("block_seconds", "compress_level"):
            d.pop(key)
        return d


def encode(spec: np.ndarray, level: int = 1) -> bytes:
    """A [0, 1] float spectrogram as HawkEars stores it: uint8 x 255, zlib. Refuses values outside
    [0, 1] (NaN included): cast to uint8 they would pass for a real spectrogram."""
    if not (np.isfinite(spec).all() and spec.min(initial=0.0) >= 0.0 and spec.max(initial=0.0) <= 1.0 + 1e-6):
        raise ValueError("spectrogram values outside [0, 1] (non-finite input?)")
    return zlib.compress((spec * 255).astype(np.uint8).tobytes(), level)


def normalise(spec: np.ndarray) -> np.ndarray:
    """A spectrogram divided by its own max (HawkEars' per-spectrogram scaling), clipped to [0, 1]."""
    peak = spec.max()
    return np.clip(spec / peak, 0, 1) if peak > 0 else spec


def decode_uint8(blob: bytes, height: int = 192, width: int = 384) -> np.ndarray:
    """A stored spectrogram as stored: uint8 (height, width), what the models and training sets take."""
    return np.frombuffer(zlib.decompress(blob), np.uint8).reshape(height, width)


def decode(blob: bytes, height: int = 192, width: int = 384) -> np.ndarray:
    """Inverse of :func:`encode`, back to float32 in [0, 1]."""
    return decode_uint8(blob, height, width).astype(np.float32) / 255


class SpectrogramMaker:
    """Turns a stream of mono audio blocks into normalised segment spectrograms."""

    def __init__(self, settings: SpecSettings, device: str = "cpu"):
        import torch  # here, not at the top: stages that only read stored spectrograms start seconds faster
        import torchaudio.functional as AF

        s = self.s = settings
        self.device = device
        pad = (s.n_fft - s.win_length) // 2
        win = torch.hann_window(s.win_length)
        self.window = torch.nn.functional.pad(win, (pad, s.n_fft - s.win_length - pad)).to(device)
        n_freqs = s.n_fft // 2 + 1
        if s.mel_scale:
            fb = AF.melscale_fbanks(n_freqs, s.min_freq, s.max_freq, s.spec_height, s.sample_rate)
            used = torch.nonzero(fb.sum(dim=1)).flatten()
            self.lo, self.hi = int(used.min()), int(used.max()) + 1
            self.fb: torch.Tensor | None = fb[self.lo : self.hi].contiguous().to(device)  # (bins, height)
        else:
            self.lo = int(s.min_freq * s.n_fft / s.sample_rate)
            self.hi = int(np.ceil(s.max_freq * s.n_fft / s.sample_rate)) + 1
            self.fb = None

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """(height, n_frames) for frames at hop spacing over ``samples`` (no centre padding).

        On the CPU the frames go through the STFT, magnitude and filter bank :data:`FRAMES_PER_CHUNK`
        at a time: a whole minute's complex STFT (2049 x 7666) does not fit in cache, and the passes
        over it cost more than the FFTs (chunked: 2.6x faster on 2 threads, equal within 3e-7 relative).
        """
        import torch

        s = self.s
        n = (len(samples) - s.n_fft) // s.hop_length + 1
        cpu = samples.device.type == "cpu"
        step = FRAMES_PER_CHUNK if cpu else max(n, 1)
        out = torch.empty(max(n, 0), s.spec_height, device=samples.device)
        for a in range(0, n, step):
            b = min(n, a + step)
            x = torch.stft(samples[a * s.hop_length : (b - 1) * s.hop_length + s.n_fft], s.n_fft, s.hop_length,
                           s.n_fft, self.window, center=False, return_complex=True).T[:, self.lo : self.hi]
            # numpy's complex magnitude is several times faster than torch's on the CPU
            mag = torch.from_numpy(np.abs(x.numpy())) if cpu else x.abs()
            if s.power != 1.0:
                mag = mag.pow(s.power)
            if self.fb is not None:
                torch.mm(mag, self.fb, out=out[a:b])
            else:
                out[a:b] = torch.nn.functional.interpolate(mag[None], size=s.spec_height, mode="area")[0]
        return out.T.contiguous()

    def _frame_of(self, k: int) -> int:
        return int(round(k * self.s.offset * self.s.sample_rate / self.s.hop_length))

    def segments(self, blocks: Iterable[np.ndarray], raw: bool = False) -> Iterator[tuple[float, np.ndarray]]:
        """Yield (offset seconds, float32 spectrogram in [0, 1]) for every whole segment; with ``raw``,
        the magnitudes before :func:`normalise` (extract measures activity on them).

        Frames are centred on multiples of the hop, exactly as torchaudio's ``center=True`` (reflect
        padding) over the whole recording, so no result depends on where block boundaries fell.
        """
        import torch

        s = self.s
        half, width = s.n_fft // 2, s.spec_width
        buf = torch.zeros(0, device=self.device)
        started = False
        mel: list[torch.Tensor] = []  # pending (height, n) chunks
        mel_start = 0  # frame index of the first pending column
        n_frames = 0  # frames computed so far
        total = 0  # real samples seen
        k = 0

        def compute(final: bool) -> None:
            nonlocal buf, n_frames
            if len(buf) < s.n_fft:
                return
            n_new = (len(buf) - s.n_fft) // s.hop_length + 1
            if final:  # frames exist only up to the last sample, as with center=True
                n_new = min(n_new, total // s.hop_length + 1 - n_frames)
            if n_new <= 0:
                return
            mel.append(self.frames(buf[: (n_new - 1) * s.hop_length + s.n_fft]))
            buf = buf[n_new * s.hop_length :]
            n_frames += n_new

        def emit() -> Iterator[tuple[float, np.ndarray]]:
            nonlocal k, mel, mel_start
            if not mel:
                return
            cat = torch.cat(mel, dim=1) if len(mel) > 1 else mel[0]
            while self._frame_of(k) + width <= n_frames:
                f = self._frame_of(k) - mel_start
                spec = cat[:, f : f + width].cpu().numpy().astype(np.float32, copy=False)
                yield k * s.offset, spec if raw else normalise(spec)
                k += 1
            drop = min(self._frame_of(k) - mel_start, cat.shape[1])
            mel, mel_start = [cat[:, drop:]], mel_start + drop

        for block in blocks:
            total += len(block)
            buf = torch.cat([buf, torch.from_numpy(np.asarray(block, np.float32)).to(self.device)])
            if not started and len(buf) > half:  # centre padding at the start, reflected like torch
                buf, started = torch.cat([buf[1 : half + 1].flip(0), buf]), True
            if started:
                compute(final=False)
                yield from emit()
        if not started:
            buf = torch.cat([torch.zeros(half, device=self.device), buf])
        tail = buf[-half - 1 : -1].flip(0) if len(buf) > half else torch.zeros(half, device=self.device)
        buf = torch.cat([buf, tail])  # centre padding at the end
        compute(final=True)
        yield from emit()

    def _padded(self, signal: np.ndarray) -> tuple[torch.Tensor, int]:
        """A whole mono signal reflect-padded by half an FFT at both ends (frame i is centred on sample
        i x hop, as in :meth:`segments`), and its number of frames."""
        import torch

        s = self.s
        half = s.n_fft // 2
        x = torch.from_numpy(np.asarray(signal, np.float32)).to(self.device)
        if len(x) <= half:
            raise ValueError(f"signal of {len(x)} samples is shorter than half an FFT window")
        return torch.nn.functional.pad(x[None, None], (half, half), mode="reflect")[0, 0], len(x) // s.hop_length + 1

    def at(self, signal: np.ndarray, offsets: Iterable[float]) -> list[np.ndarray]:
        """Spectrograms starting at any ``offsets`` (seconds) of a whole mono signal, framed exactly as
        :meth:`segments` frames them, so a re-extracted spectrogram equals the stored one."""
        s = self.s
        padded, n_frames = self._padded(signal)
        out = []
        for o in offsets:
            f = int(round(o * s.sample_rate / s.hop_length))
            if f < 0 or f + s.spec_width > n_frames:
                raise ValueError(f"a {s.segment_len} s segment at {o} s does not fit in {len(signal) / s.sample_rate:.2f} s")
            spec = self.frames(padded[f * s.hop_length : (f + s.spec_width - 1) * s.hop_length + s.n_fft])
            out.append(normalise(spec.cpu().numpy().astype(np.float32, copy=False)))
        return out


def spectrograms_of(signal: np.ndarray, settings: SpecSettings) -> list[tuple[float, np.ndarray]]:
    """All segment spectrograms of an in-memory mono signal already at ``settings.sample_rate``."""
    return list(SpectrogramMaker(settings).segments([signal]))
