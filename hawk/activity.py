"""How far the loudest sound of each segment stands above its own recording's background.

Unattended curation needs to tell a segment with a call from one of background only, without a
model. A recording's background is, per frequency band, a low percentile of its frames over the
whole recording (birds sing in bouts, so most frames of any one band are background). A segment's
activity is the largest excess over that background, in dB, anywhere in the segment, after a small
time-frequency smoothing so one noisy cell is not a call. A 20-ms chip counts as much as a long song.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hawk.spectrogram import SpecSettings, SpectrogramMaker


def _smooth(x: np.ndarray, bands: int, frames: int) -> np.ndarray:
    """Moving average over ``bands`` x ``frames`` (edges averaged over what exists)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(x, size=(bands, frames), mode="nearest")


def segment_activity(maker: SpectrogramMaker, signal: np.ndarray, offsets: Iterable[float],
                     percentile: float = 20.0, bands: int = 3, frames: int = 3) -> np.ndarray:
    """Activity in dB of the segments at ``offsets`` (seconds) of a mono ``signal`` at the maker's rate."""
    s = maker.s
    mag = maker.whole(signal)
    level = 20 * np.log10(_smooth(mag, bands, frames) + 1e-9)
    excess = (level - np.percentile(level, percentile, axis=1, keepdims=True)).max(axis=0)  # per frame
    out = []
    for o in offsets:
        f = int(round(o * s.sample_rate / s.hop_length))
        seg = excess[max(0, f) : f + s.spec_width]
        out.append(float(seg.max()) if len(seg) else 0.0)
    return np.asarray(out, np.float32)


class ActivityFilter:
    """Unattended curation as a chooser for :func:`hawk.curation.build_db`, which reads each recording
    once: keeps the segments whose activity is at least ``min_db`` and the ``restored`` ones (a
    person's choice) whatever their activity, and records what it drops as (file, offset, dB)."""

    def __init__(self, settings: SpecSettings, min_db: float, restored: dict[str, list[float]] | None = None,
                 percentile: float = 20.0):
        self.maker, self.min_db, self.percentile = SpectrogramMaker(settings), min_db, percentile
        self.restored = restored or {}
        self.dropped: list[tuple[str, float, float]] = []

    def __call__(self, fname: str, signal: np.ndarray, offsets: list[float]) -> list[float]:
        act = segment_activity(self.maker, signal, offsets, self.percentile)
        keep = set(self.restored.get(fname, ()))
        kept = []
        for o, a in zip(offsets, act):
            if a >= self.min_db or o in keep:
                kept.append(o)
            else:
                self.dropped.append((fname, o, round(float(a), 1)))
        return kept
