"""Embedders: models that turn a 3 s segment into a vector whose distances mean similarity.

``birdnet`` (BirdNET v2.4 via ai-edge-litert, audio in) and ``checkpoint`` (a model this pipeline
trained, spectrogram in) share one interface, so the embed stage, dedup and search do not care which.
"""

from __future__ import annotations

from typing import Any

from hawk.embed.base import Embedder, EmbedderError


def create_embedder(name: str, **options: Any) -> Embedder:
    """The embedder called ``name`` (config ``embedder.name``), built with its options."""
    if name == "birdnet":
        from hawk.embed.birdnet import BirdNETEmbedder

        return BirdNETEmbedder(**options)
    if name == "checkpoint":
        from hawk.embed.checkpoint import CheckpointEmbedder

        return CheckpointEmbedder(**options)
    raise EmbedderError(f"unknown embedder {name!r}; choose birdnet or checkpoint")


__all__ = ["Embedder", "EmbedderError", "create_embedder"]
