"""Spectrogram images for people to look at, named the HawkEars way: ``{stem}-{offset:.2f}.jpeg``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from hawk.db import SpecDB
from hawk.spectrogram import decode


def image_name(filename: str, offset: float) -> str:
    return f"{Path(filename).stem}-{offset:.2f}.jpeg"


def spec_image(spec: np.ndarray, cmap: str = "viridis", scale: int = 2) -> Image.Image:
    """Low frequencies at the bottom, as in Audacity and HawkEars' plots."""
    rgb = (colormaps[cmap](np.flipud(spec))[:, :, :3] * 255).astype(np.uint8)
    img = Image.fromarray(rgb)
    return img.resize((img.width * scale // 2, img.height * scale // 2)) if scale != 2 else img


def plot_db(
    db_path: str | Path, out_dir: str | Path, num: int | None = None, seed: int = 0, height: int = 192,
    width: int = 384, cmap: str = "viridis",
) -> list[Path]:
    """Draw every spectrogram of a database (or a random sample of ``num``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with SpecDB(db_path) as db:
        rows = list(db.spectrograms())
    if num is not None and num < len(rows):
        pick = np.random.default_rng(seed).choice(len(rows), num, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    return write_images(((r.filename, r.offset, decode(r.value, height, width)) for r in rows), out, cmap)


def write_images(items: Iterable[tuple[str, float, np.ndarray]], out: Path, cmap: str = "viridis") -> list[Path]:
    paths = []
    for filename, offset, spec in items:
        path = out / image_name(filename, offset)
        spec_image(spec, cmap).save(path, quality=90)
        paths.append(path)
    return paths
