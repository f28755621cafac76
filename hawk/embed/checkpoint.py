"""A model trained by this pipeline as an embedder (pooled penultimate features), as HawkEars embeds
with its own trained models."""

from __future__ import annotations

import numpy as np
import torch

from hawk.ckpt import load_checkpoint, model_from_checkpoint
from hawk.embed.base import Embedder
from hawk.fsutil import sha256_file
from hawk.models import embed_features
from hawk.spectrogram import SpecSettings, SpectrogramMaker


class CheckpointEmbedder(Embedder):
    name = "checkpoint"
    kind = "spectrogram"

    def __init__(self, path: str, batch_size: int = 64, device: str = "auto"):
        ckpt = load_checkpoint(path)
        self.settings = SpecSettings.from_mapping(ckpt["spec_settings"])
        self.sample_rate = self.settings.sample_rate
        self.segment_len = self.settings.segment_len
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model = model_from_checkpoint(ckpt).to(self.device)
        self.batch_size = batch_size
        digest = sha256_file(path)[:12]
        self.version = f"{ckpt['model_name']}:{digest}"
        with torch.no_grad():
            probe = torch.zeros(1, 1, self.settings.spec_height, self.settings.spec_width, device=self.device)
            self.dim = int(embed_features(self.model, probe).shape[1])

    def inputs_from_signal(self, signal: np.ndarray, offsets: list[float]) -> np.ndarray:
        return np.stack(SpectrogramMaker(self.settings).at(signal, offsets))

    @torch.no_grad()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(batch), self.batch_size):
            x = torch.from_numpy(np.asarray(batch[start : start + self.batch_size], np.float32))
            out.append(embed_features(self.model, x[:, None].to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
