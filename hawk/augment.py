"""Training-time augmentation of spectrograms, as HawkEars does it, with HawkEars' default probabilities.

- merge (``prob_merge`` 0.35): add a spectrogram of another class (never Noise) and label both, which
  teaches the model that two species can call at once;
- real noise (``prob_real_noise`` 0.3): add a spectrogram of the Noise class, scaled down; the reason
  the class name Noise is reserved. Without a Noise class there is no noise mixing (with a warning);
- speckle (``prob_speckle`` 0.1): multiplicative Gaussian speckle;
- fade (``prob_fade1`` 0.2 then ``prob_fade2`` 1): scale the values down so the model meets quiet calls;
- time shift (``prob_shift`` 1, up to ``max_shift`` 6 frames): roll along time.

Validation data is never augmented. Randomness comes from the generator passed in, so the same seed,
epoch and index always give the same augmented sample, whatever the number of data-loader workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hawk.settings import from_mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentSettings:
    enabled: bool = True
    prob_merge: float = 0.35
    prob_real_noise: float = 0.3
    prob_speckle: float = 0.1
    prob_fade1: float = 0.2
    prob_fade2: float = 1.0
    prob_shift: float = 1.0
    max_shift: int = 6
    min_fade1: float = 0.05
    max_fade1: float = 0.8
    min_fade2: float = 0.1
    max_fade2: float = 1.0
    speckle_variance: float = 0.012
    min_noise: float = 0.1  # real noise is scaled by a factor in [min_noise, max_noise]
    max_noise: float = 0.5

    @classmethod
    def from_mapping(cls, cfg: Any) -> "AugmentSettings":
        return from_mapping(cls, cfg, "augmentation")


class Augmenter:
    """Applies the augmentations to one (spectrogram, label) at a time.

    ``fetch(i)`` returns spectrogram i of the training set as float32 in [0, 1]; ``labels`` gives each
    index's class; ``noise_class`` is the index of the Noise class or None.
    """

    def __init__(self, settings: AugmentSettings, labels: np.ndarray, fetch: Callable[[int], np.ndarray],
                 noise_class: int | None):
        self.s = settings
        self.labels = labels
        self.fetch = fetch
        self.noise_class = noise_class
        self.noise_idx = np.flatnonzero(labels == noise_class) if noise_class is not None else np.zeros(0, int)
        self.merge_idx = np.flatnonzero(labels != noise_class) if noise_class is not None else np.arange(len(labels))
        if noise_class is None and settings.enabled and settings.prob_real_noise > 0:
            log.warning("no class named Noise: training without real-noise augmentation")

    def __call__(self, spec: np.ndarray, target: np.ndarray, cls: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
        s = self.s
        if not s.enabled:
            return spec, target
        if cls != self.noise_class and len(self.merge_idx) and rng.random() < s.prob_merge:
            other = int(self.merge_idx[rng.integers(len(self.merge_idx))])
            if self.labels[other] != cls:
                spec = spec + self.fetch(other)
                target = target.copy()
                target[self.labels[other]] = 1.0
                spec /= max(float(spec.max()), 1e-6)
        if len(self.noise_idx) and cls != self.noise_class and rng.random() < s.prob_real_noise:
            noise = self.fetch(int(self.noise_idx[rng.integers(len(self.noise_idx))]))
            spec = spec + noise * rng.uniform(s.min_noise, s.max_noise)
            spec /= max(float(spec.max()), 1e-6)
        if rng.random() < s.prob_speckle:
            spec = np.clip(spec + spec * rng.normal(0.0, np.sqrt(s.speckle_variance), spec.shape), 0, None)
            spec /= max(float(spec.max()), 1e-6)
        if rng.random() < s.prob_fade1:
            spec = spec * rng.uniform(s.min_fade1, s.max_fade1)
        if rng.random() < s.prob_fade2:
            spec = spec * rng.uniform(s.min_fade2, s.max_fade2)
        if s.max_shift and rng.random() < s.prob_shift:
            spec = np.roll(spec, int(rng.integers(-s.max_shift, s.max_shift + 1)), axis=1)
        return spec.astype(np.float32, copy=False), target
