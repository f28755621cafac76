"""Windows that are not their class, as training rows of the embedding head: a negative for their
class only. Most are a person's "no" verdicts; the rest are windows curation by the model dropped.

Why: leaving out a window a person said no to only removes a wrong positive; kept as a negative of
its class, the same window teaches the head what the class is not (the background, the neighbours and
look-alikes of the user's sites), and those are the windows the model was wrong about. A "no, not
CHIP" says nothing about the other classes, so the head's loss sees only the row's own class. On the
recorded kit (seed 1), 20 doubt-queue verdicts per class: per-sound macro AP 0.858 with the no's
only left out, 0.899 with them as negatives weighted 3x (benchmarks/agile.py measures the loop).

Two kinds of "no": a window of the class's own recordings (its image in the curation folder's
rejected/; its vector is the embed stage's) and a window of the user's own recordings (the field
queue's no, a 3-s clip in data/field/<CODE>/rejected/, embedded here).

And the windows of a class's own recordings that curation by the model dropped (select's
data/dropped/<CODE>/dropped.csv, those no person restored): its out-of-fold probe judged them the
recording's pauses, rain or neighbours, and that is what the head is otherwise never shown. On the
recorded kit (seed 1, no verdicts) per-sound macro AP 0.858 -> 0.891 with them as negatives of their
class (3% of them hold a call); the head weighs them ``dropped_weight``, a person's no
``verdict_weight``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hawk.audio import is_audio_file
from hawk.curation import REJECTED, verdicts
from hawk.doubt import clip_window
from hawk.fsutil import atomic_open

CURATION, FIELD, DROPPED = "curation", "field", "dropped"  # where a "no" came from: a person, or the model


@dataclass
class Negatives:
    """Rows a person said no to: (m, dim) vectors, and per row its class code, window and origin."""

    vectors: np.ndarray
    codes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (what, why) for the stage's report

    def __len__(self) -> int:
        return len(self.codes)

    def add(self, code: str, file: str, offset: float, origin: str) -> None:
        self.codes.append(code)
        self.files.append(file)
        self.offsets.append(float(offset))
        self.origins.append(origin)

    def counts(self, origins: tuple[str, ...] = (CURATION, FIELD, DROPPED)) -> dict[str, int]:
        """Rows per class, of those from ``origins``."""
        mine = [c for c, o in zip(self.codes, self.origins) if o in origins]
        return {c: mine.count(c) for c in dict.fromkeys(mine)}

    def by_model(self) -> np.ndarray:
        """Per row: the model's no (a dropped window), not a person's."""
        return np.array([o == DROPPED for o in self.origins], bool)

    def save(self, path: Path) -> None:
        with atomic_open(path, "wb") as f:
            np.savez(f, vectors=self.vectors.astype(np.float32), codes=np.array(self.codes, dtype=str),
                     files=np.array(self.files, dtype=str), offsets=np.array(self.offsets, np.float64),
                     origins=np.array(self.origins, dtype=str))

    @classmethod
    def load(cls, path: Path) -> "Negatives":
        with np.load(path, allow_pickle=False) as d:
            return cls(d["vectors"], d["codes"].tolist(), d["files"].tolist(), d["offsets"].tolist(),
                       d["origins"].tolist())


def collect_negatives(codes: list[str], curation: Path, field_clips: Path, stored: dict[str, dict[str, list[float]]],
                      vectors: dict[str, dict[tuple[str, float], np.ndarray]], dim: int,
                      embed_clips: Callable[[list[Path]], np.ndarray] | None,
                      exclude: dict[str, set[str]] | None = None, dropped: Path | None = None) -> Negatives:
    """Every "no" of ``codes``: rejected windows of the class's recordings (``stored``: code -> file ->
    offsets of its database; ``vectors``: the embed stage's, by window), rejected field clips
    (``field_clips``/<CODE>/rejected/*.wav, turned into vectors by ``embed_clips``, called once) and,
    with ``dropped`` (select's folder), the windows curation by the model dropped."""
    out = Negatives(np.zeros((0, dim), np.float32))
    rows: list[np.ndarray] = []
    clips: list[tuple[str, Path]] = []
    for code in codes:
        _, rejected = verdicts(curation / code, stored.get(code, {}), (exclude or {}).get(code, set()))
        said = {(f, float(o)) for f, offs in rejected.offsets.items() for o in offs}
        for f, o in sorted(said):
            v = vectors.get(code, {}).get((f, o))
            if v is None:
                out.unusable.append((f"{code}/{f}@{o}", "no embedding of this window"))
                continue
            out.add(code, f, o, CURATION)
            rows.append(v)
        for f, o in dropped_by_model(dropped / code) if dropped is not None else []:
            v = vectors.get(code, {}).get((f, o))
            if v is not None and (f, o) not in said:  # a person's no counts once, as theirs
                out.add(code, f, o, DROPPED)
                rows.append(v)
        folder = field_clips / code / REJECTED
        clips += [(code, p) for p in sorted(folder.iterdir()) if is_audio_file(p)] if folder.is_dir() else []
    if clips and embed_clips is not None:
        rows += list(embed_clips([p for _, p in clips]))
        for code, p in clips:
            out.add(code, *(clip_window(p) or (p.stem, 0.0)), FIELD)
    out.vectors = np.asarray(rows, np.float32).reshape(len(rows), dim)
    return out


def dropped_by_model(folder: Path) -> list[tuple[str, float]]:
    """(file, offset) of the windows select's curation by the model dropped (``dropped.csv`` judged by
    ``score``; activity drops are not the model's judgement) and no person restored."""
    path = folder / "dropped.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "score" not in (reader.fieldnames or []):
            return []
        return [(r["file"], float(r["offset"])) for r in reader if r["restored"] != "1"]
