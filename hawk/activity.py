"""How far the loudest sound of each segment stands above its own recording's background.

Unattended curation needs to tell a segment with a call from one of background only, without a
model. A recording's background is, per frequency band, a low percentile of the levels of its
segments' frames (birds sing in bouts, so most frames of any one band are background). A segment's
activity is the largest excess over that background, in dB, anywhere in the segment, after a small
time-frequency smoothing so one noisy cell is not a call. A 20-ms chip counts as much as a long song.

extract measures it while it makes the spectrograms (:class:`ActivityMeter`) and stores it beside
them, so select chooses without reading any audio again.

Levels are measured from the recording's noise floor up: a band never reads lower than 16-bit
quantisation noise (white noise of one least-significant bit). Without that floor a near-silent file
(digital zero with a stray LSB, or a lone click) makes its background -180 dB and any blip a 100-dB
"call"; with it such a file reads as the silence it is. A segment with nothing above the floor in any
band holds no sound at all (normalised, it would be an all-zero image): extract does not store it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

PERCENTILE = 20.0  # the background: this percentile of each band's frame levels
SMOOTH = (3, 3)  # bands x frames averaged before the levels are taken
_LO, _STEP, _BINS = -200.0, 0.1, 3000  # level histogram: -200 to +100 dB in 0.1-dB bins
# Stored in each class database: a database measured another way is rebuilt by extract.
LSB = 2.0**-15  # one least-significant bit of 16-bit audio, in full-scale units
DEFINITION = {"percentile": PERCENTILE, "smooth": list(SMOOTH), "step_db": _STEP, "floor": "16-bit noise"}


@lru_cache(maxsize=8)
def noise_floor(settings) -> np.ndarray:
    """Each band's mean magnitude for white noise of one LSB, under ``settings`` (a
    :class:`hawk.spectrogram.SpecSettings`): the quietest a real recording's band can be."""
    from hawk.spectrogram import SpectrogramMaker

    noise = np.random.default_rng(0).standard_normal(int(settings.sample_rate * settings.segment_len * 3)) * LSB
    mags = [m for _, m in SpectrogramMaker(settings).segments([noise.astype(np.float32)], raw=True)]
    return np.stack(mags).mean(axis=(0, 2)).astype(np.float32)


class ActivityMeter:
    """Measures the segments of one recording as they stream past, in memory that grows by one small
    vector per segment (a per-band level histogram stands in for all the frames)."""

    def __init__(self, floor: np.ndarray):
        self.floor = floor[:, None]
        height = len(floor)
        self.hist = np.zeros((height, _BINS), np.int64)
        self.offsets: list[float] = []
        self.peaks: list[np.ndarray] = []  # per segment: each band's loudest smoothed level

    def add(self, offset: float, mag: np.ndarray) -> bool:
        """One segment's un-normalised (height, frames) magnitudes; False when the segment is blank
        (nothing above the noise floor): it still counts towards the background, but is not measured."""
        from scipy.ndimage import uniform_filter

        blank = bool((mag <= self.floor).all())
        level = 20 * np.log10(np.maximum(uniform_filter(mag, size=SMOOTH, mode="nearest"), self.floor))
        if not blank:
            self.offsets.append(offset)
            self.peaks.append(level.max(axis=1))
        h = len(level)
        idx = np.clip(((level - _LO) / _STEP).astype(np.int64), 0, _BINS - 1) + np.arange(h)[:, None] * _BINS
        self.hist += np.bincount(idx.ravel(), minlength=h * _BINS).reshape(h, _BINS)
        return not blank

    def background(self) -> np.ndarray:
        """Each band's ``PERCENTILE`` level in dB (the centre of the histogram bin it falls in)."""
        cdf = self.hist.cumsum(axis=1)
        first = (cdf >= cdf[:, -1:] * PERCENTILE / 100).argmax(axis=1)
        return _LO + (first + 0.5) * _STEP

    def activity(self) -> list[tuple[float, float]]:
        """(offset, activity in dB) of every segment added."""
        if not self.peaks:
            return []
        act = (np.stack(self.peaks) - self.background()).max(axis=1)
        return [(o, round(float(a), 2)) for o, a in zip(self.offsets, act)]
