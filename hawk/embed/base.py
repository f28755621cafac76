"""The embedder interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hawk.audio import read_mono
from hawk.errors import HawkError


class EmbedderError(HawkError, ValueError):
    pass


class Embedder(ABC):
    """Maps a batch of inputs to a batch of vectors.

    ``kind`` says what the inputs are: ``"audio"`` (``segment_len`` seconds at ``sample_rate``, read
    from the recording at each spectrogram's offset) or ``"spectrogram"`` (the stored spectrograms).
    """

    name: str
    version: str
    dim: int
    kind: Literal["audio", "spectrogram"]
    sample_rate: int
    segment_len: float

    @abstractmethod
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(n, ...) inputs -> (n, dim) float32 vectors."""

    def identity(self) -> dict[str, Any]:
        """What must match for two sets of embeddings to be comparable."""
        return {"name": self.name, "version": self.version, "dim": self.dim}

    def inputs_at(self, path: str | Path, offsets: list[float]) -> np.ndarray:
        """Inputs for segments of one recording starting at ``offsets`` seconds."""
        signal = read_mono(path, self.sample_rate)
        return self.inputs_from_signal(signal, offsets)

    def inputs_from_signal(self, signal: np.ndarray, offsets: list[float]) -> np.ndarray:
        n = int(round(self.segment_len * self.sample_rate))
        out = np.zeros((len(offsets), n), np.float32)
        for i, o in enumerate(offsets):
            clip = signal[int(round(o * self.sample_rate)):][:n]
            out[i, : len(clip)] = clip  # a segment running past the end is zero-padded
        return out
