"""Spectrogram images for people to look at, named the HawkEars way.

Plain plots are ``{stem}-{offset:.2f}.jpeg``; search results are ``{rank}~{stem}-{offset:.2f}~{distance:.3f}.jpeg``
(rank 0 is the query). Images have time and frequency axes, low frequencies at the bottom. The axes are
drawn once with matplotlib and each spectrogram is pasted into that frame, so hundreds of images take
a second rather than a minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from hawk.db import SpecDB
from hawk.spectrogram import SpecSettings, decode


def image_name(filename: str, offset: float, rank: int | None = None, distance: float | None = None) -> str:
    base = f"{Path(filename).stem}-{offset:.2f}"
    if rank is None:
        return f"{base}.jpeg"
    return f"{rank}~{base}~{distance:.3f}.jpeg"


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


class SpecRenderer:
    """Draws spectrograms in a frame with axes: seconds along x, Hz along y (mel-spaced when the
    spectrograms are)."""

    def __init__(self, settings: SpecSettings, cmap: str = "viridis", scale: float = 1.0):
        import matplotlib  # imported here: a stage that draws nothing should not pay for it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import colormaps

        s = self.s = settings
        self.cmap = colormaps[cmap]
        w, h = int(s.spec_width * scale), int(s.spec_height * scale)
        dpi = 100
        fig = plt.figure(figsize=((w + 70) / dpi, (h + 45) / dpi), dpi=dpi)
        ax = fig.add_axes((60 / (w + 70), 38 / (h + 45), w / (w + 70), h / (h + 45)))
        ax.set_xlim(0, s.segment_len)
        lo, hi = (s.min_freq, s.max_freq)
        ticks = [f for f in (500, 1000, 2000, 4000, 8000, 12000) if lo <= f <= hi]
        if s.mel_scale:
            ax.set_ylim(_mel(np.array(lo)), _mel(np.array(hi)))
            ax.set_yticks(_mel(np.array(ticks)))
        else:
            ax.set_ylim(lo, hi)
            ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t / 1000:g}k" for t in ticks], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("seconds", fontsize=7, labelpad=1)
        ax.set_ylabel("Hz", fontsize=7, labelpad=1)
        fig.canvas.draw()
        self.frame = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
        x0, y0, x1, y1 = ax.get_window_extent().extents
        fh = self.frame.shape[0]
        self.box = (int(round(x0)), int(round(fh - y1)), int(round(x1)), int(round(fh - y0)))
        plt.close(fig)

    def image(self, spec: np.ndarray) -> Image.Image:
        rgb = (self.cmap(np.flipud(spec))[:, :, :3] * 255).astype(np.uint8)
        left, top, right, bottom = self.box
        inner = Image.fromarray(rgb).resize((right - left, bottom - top), Image.BILINEAR)
        img = Image.fromarray(self.frame)
        img.paste(inner, (left, top))
        return img

    def save(self, spec: np.ndarray, path: Path) -> Path:
        self.image(spec).save(path, quality=90)
        return path


def plot_db(db_path: str | Path, out_dir: str | Path, settings: SpecSettings, num: int | None = None,
            seed: int = 0, cmap: str = "viridis") -> list[Path]:
    """Draw every spectrogram of a database (or a random sample of ``num``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with SpecDB(db_path) as db:
        rows = list(db.spectrograms())
    if num is not None and num < len(rows):
        pick = np.random.default_rng(seed).choice(len(rows), num, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    items = ((r.filename, r.offset, decode(r.value, settings.spec_height, settings.spec_width)) for r in rows)
    return write_images(items, out, SpecRenderer(settings, cmap))


def write_images(items: Iterable[tuple[str, float, np.ndarray]], out: Path, renderer: SpecRenderer) -> list[Path]:
    return [renderer.save(spec, out / image_name(filename, offset)) for filename, offset, spec in items]


def write_dropped(out: Path, dropped: list[tuple[str, float, float]], class_db: Path, settings: SpecSettings,
                  measure: str = "score", overruled: list[tuple[str, float, float]] = ()) -> int:
    """Unattended curation's dropped spectrograms, for a person to look through: one image each plus
    ``dropped.csv`` (file, offset, ``measure``: the value it was judged by, image, restored), written
    to a fresh folder swapped into place. The ``overruled`` ones (dropped but restored by the person)
    are drawn too, with restored 1, so the review page can still un-restore them. Returns the number
    of dropped (not restored) ones."""
    import csv
    import shutil

    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    want = {(f, o): (a, 0) for f, o, a in dropped} | {(f, o): (a, 1) for f, o, a in overruled}
    renderer = SpecRenderer(settings) if want else None
    rows = []
    with SpecDB(class_db) as db:
        for r in db.spectrograms():
            if (r.filename, r.offset) in want:
                name = image_name(r.filename, r.offset)
                renderer.save(decode(r.value, settings.spec_height, settings.spec_width), tmp / name)
                value, restored = want[(r.filename, r.offset)]
                rows.append((r.filename, r.offset, value, name, restored))
    with open(tmp / "dropped.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "offset", measure, "image", "restored"])
        w.writerows(rows)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return sum(not row[-1] for row in rows)
