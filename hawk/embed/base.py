"""The embedder interface."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hawk.audio import RESAMPLER_WARMUP, iter_mono, read_mono
from hawk.errors import HawkError


class EmbedderError(HawkError, ValueError):
    pass


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is a cosine similarity."""
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


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

    def embed_all(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Unit-length vectors of ``inputs``, ``batch_size`` at a time (what search and the heads compare)."""
        return np.concatenate([normalise(self.embed(inputs[i : i + batch_size]))
                               for i in range(0, len(inputs), batch_size)] or [np.zeros((0, self.dim), np.float32)])

    def inputs_at(self, path: str | Path, offsets: list[float]) -> np.ndarray:
        """Inputs for segments of one recording starting at ``offsets`` seconds."""
        signal = read_mono(path, self.sample_rate)
        return self.inputs_from_signal(signal, offsets)

    def embed_file(self, path: str | Path, offsets: list[float], batch_size: int = 64) -> np.ndarray:
        """Unit-length vectors of the segments of ``path`` at ``offsets`` (ascending), as the embed
        stage makes them. Audio embedders stream the recording, so a long one needs only a batch of
        segments in memory."""
        if self.kind != "audio" or not offsets:
            return self.embed_all(self.inputs_at(path, offsets), batch_size)
        n = int(round(self.segment_len * self.sample_rate))
        starts = [int(round(o * self.sample_rate)) for o in offsets]
        begin = math.floor(max(0.0, offsets[0] - RESAMPLER_WARMUP))  # whole seconds: a seek to a sample of any file
        _, blocks = iter_mono(path, self.sample_rate, start=begin)
        buf, buf_start, out, batch, k = np.zeros(0, np.float32), begin * self.sample_rate, [], [], 0

        def cut(final: bool) -> None:
            nonlocal k
            while k < len(starts) and (final or starts[k] + n <= buf_start + len(buf)):
                clip = buf[max(starts[k] - buf_start, 0):][:n]
                batch.append(np.pad(clip, (0, n - len(clip))))  # a segment running past the end is zero-padded
                k += 1
                if len(batch) == batch_size:
                    out.append(normalise(self.embed(np.stack(batch))))
                    batch.clear()

        for block in blocks:
            buf = np.concatenate([buf, block])
            cut(False)
            if k == len(starts):  # the last segment is cut: the rest of the file is not needed (a part of it)
                blocks.close()
                break
            keep = starts[k] - buf_start
            buf, buf_start = buf[keep:], buf_start + keep
        cut(True)
        if batch:
            out.append(normalise(self.embed(np.stack(batch))))
        return np.concatenate(out)

    def inputs_from_signal(self, signal: np.ndarray, offsets: list[float]) -> np.ndarray:
        n = int(round(self.segment_len * self.sample_rate))
        out = np.zeros((len(offsets), n), np.float32)
        for i, o in enumerate(offsets):
            clip = signal[int(round(o * self.sample_rate)):][:n]
            out[i, : len(clip)] = clip  # a segment running past the end is zero-padded
        return out
