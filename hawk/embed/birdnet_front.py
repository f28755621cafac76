"""BirdNET v2.4's own spectrogram front end, as two matrix products instead of two RFFTs.

The model normalises each 3-s segment to [-1, 1], frames it twice (2048 and 1024 samples), takes
the real part of each frame's RFFT, maps it to 96 mel bands, and compresses with a power (the
model's constants, read from its file: windows, mel matrices, exponents, frame steps). Real part and
mel map are both linear, so each pair folds into one (frame length x 96) matrix; one matrix product
per frame set replaces the RFFT operator that made up most of LiteRT's time per segment. Each frame's
mean is taken out before the product and its share added back exactly, so stretches of digital
silence (a recording's zero-padded end) lose no precision to cancellation. On recorded audio the
embeddings match the shipped model's to ~2e-5; on windows that are partly digital silence the shipped
model's float32 RFFT is itself up to ~1e-2 from an exact (float64) front end, where this one stays
within ~1e-5 of it.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hawk.embed.tflite_graph import Graph

OUTPUT = "model/concatenate/concat"  # the front end's output: (n, 96 mel, frames, 2 frame sets)


class Front:
    def __init__(self, graph: Graph):
        c = graph.constant
        self.eps = float(c("model/MEL_SPEC1/add/y"))
        self.shift, self.scale = float(c("model/MEL_SPEC1/Sub_1/y")), float(c("model/MEL_SPEC1/Mul/y"))
        self.sets = []
        for k in (1, 2):
            n = int(c(f"model/MEL_SPEC{k}/stft/frame_length"))
            window = c(f"model/MEL_SPEC{k}/stft/hann_window/sub_2").astype(np.float64)
            mel = c(f"model/MEL_SPEC{k}/Tensordot/MatMul").astype(np.float64)  # (96, n // 2 + 1)
            real_part = np.cos(2 * np.pi * np.outer(np.arange(n), np.arange(n // 2 + 1)) / n) * window[:, None]
            matrix = real_part @ mel.T  # (n, 96)
            self.sets.append((n, int(c(f"model/MEL_SPEC{k}/stft/frame_step")),
                              matrix.astype(np.float32), matrix.sum(0).astype(np.float32),
                              np.float32(c(f"model/MEL_SPEC{k}/truediv_1"))))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(n, samples) float32 audio -> (n, 96, frames, 2) float32, as the model's front end. NumPy,
        not torch: every process that embeds would otherwise pay torch's import (~1.4 s) to start."""
        x = np.ascontiguousarray(batch, np.float32)
        x = x - x.min(1, keepdims=True)
        x = (x / (x.max(1, keepdims=True) + np.float32(self.eps)) - np.float32(self.shift)) * np.float32(self.scale)
        out = []
        for n, step, matrix, dc, power in self.sets:
            frames = sliding_window_view(x, n, axis=1)[:, ::step]  # (n, frames, frame length), a view
            mean = frames.mean(-1, keepdims=True, dtype=np.float32)
            m = (frames - mean) @ matrix + mean * dc  # (n, frames, 96); the mean's share added exactly
            out.append(np.power(m * m, power)[..., ::-1].transpose(0, 2, 1))
        return np.ascontiguousarray(np.stack(out, -1))
