"""Embedding files: one ``.npz`` per class, keyed by spectrogram id, stamped with the embedder.

``ids`` (int64 Spectrogram.ID), ``vectors`` (float32, unit length, so cosine distance is 1 - dot) and
``meta`` (JSON: embedder name, version, dim and the class code). Loading never runs code
(``allow_pickle=False``). Embeddings from different embedders live in different spaces; mixing them
is refused with the files named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hawk.db import SpecDB
from hawk.embed.base import EmbedderError
from hawk.fsutil import atomic_open


@dataclass
class Embeddings:
    ids: np.ndarray
    vectors: np.ndarray
    meta: dict[str, Any]

    @property
    def embedder(self) -> dict[str, Any]:
        return {k: self.meta.get(k) for k in ("name", "version", "dim")}


def save_embeddings(path: str | Path, emb: Embeddings) -> None:
    with atomic_open(path, "wb") as f:
        np.savez(f, ids=emb.ids.astype(np.int64), vectors=emb.vectors.astype(np.float32),
                 meta=np.array(json.dumps(emb.meta)))


def load_embeddings(path: str | Path) -> Embeddings:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Embeddings(z["ids"], z["vectors"], json.loads(str(z["meta"])))
    except FileNotFoundError:
        raise EmbedderError(f"{path}: no embeddings file; run the embed stage first") from None
    except Exception as e:
        raise EmbedderError(f"{path}: not a hawk embeddings file ({type(e).__name__}: {e})") from e


def vectors_by_window(db_path: str | Path, emb_path: str | Path) -> tuple[dict[tuple[str, float], np.ndarray],
                                                                          dict[str, Any]]:
    """A class's embeddings keyed by window, (recording file, offset), and the embedder that made them;
    spectrograms the embedder skipped (an unreadable recording) are absent. A store the embed stage
    left empty because nothing needed it is an error naming the class."""
    emb = load_embeddings(emb_path)
    if emb.meta.get("unused"):
        raise EmbedderError(f"{emb_path}: class {emb.meta.get('code')} was not embedded; run "
                            f"`dvc repro embed@{emb.meta.get('code')}`")
    vec = dict(zip(emb.ids.tolist(), emb.vectors))
    with SpecDB(db_path) as db:
        return {(f, o): vec[i] for i, f, o in db.windows() if i in vec}, emb.embedder


def check_same_embedder(items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``items``: where -> embedder identity. Returns the common identity or names the mismatch."""
    kinds: dict[str, list[str]] = {}
    for where, ident in items.items():
        kinds.setdefault(json.dumps(ident, sort_keys=True), []).append(where)
    if len(kinds) > 1:
        detail = "; ".join(f"{', '.join(w)} made by {k}" for k, w in kinds.items())
        raise EmbedderError(f"embeddings from different embedders cannot be mixed: {detail}. "
                            "Re-run embed with one embedder for every class.")
    return json.loads(next(iter(kinds))) if kinds else {}
