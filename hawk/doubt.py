"""Doubt: the windows of a class most worth a person's verdict, ranked, each with its reason.

Perch's agile modelling and BirdNET-Analyzer's review both let the model choose what a person looks
at: a verdict on a window the model already agrees with teaches nothing. After a model exists, every
candidate window of a class (kept for training or dropped by curation) is scored with it, and four
kinds of window are queued, taken in turn so each kind gets a share of the budget:

- ``kept_low``: kept for training, the least likely to hold the class first (by its out-of-fold keep
  score when the class is curated by the model: the model itself trained on the window and agrees
  with it; else by the model's score). No boundary: curation by the model keeps only windows whose
  keep score passed its threshold, so the doubtful ones among them sit just above it; a "no" here
  both removes a wrong positive and adds a negative, the verdict that moves training most;
- ``dropped_high``: dropped by curation, but the model scores it high (a call curation lost);
- ``other_high``: another class scores high (a secondary species, a confusable pair, a bird in Noise);
- ``margin``: the model's score is nearest its decision boundary (what a verdict moves most);
  these fill whatever the other kinds leave of the budget.

A window a person has already judged is never queued again.

The same for the deployment domain (:func:`rank_field`): windows of the user's own field recordings
(``infer.input``), the ones the model is surest of (``top``: is that really the bird, at your site?)
and the ones it is least sure of (``margin``), in turn. A confirmed field window becomes a training
row of its class (a 3-s clip in ``data/field/<CODE>/``, which pickle brings in: hawk.specset).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hawk.db import SpecDB
from hawk.fsutil import atomic_open
from hawk.spectrogram import SpecSettings, decode

REASONS = ("kept_low", "dropped_high", "other_high", "top", "margin")
FIELDS = ("rank", "file", "offset", "reason", "why", "score", "keep_score", "other", "other_score", "kept", "image")


@dataclass(frozen=True)
class DoubtSettings:
    size: int = 40  # windows queued per class and round
    boundary: float = 0.5  # the model's score that separates yes from no (its heads are calibrated)
    field_recordings: int = 200  # the field queue scores at most this many of your recordings (a seeded sample)


@dataclass(frozen=True)
class Candidate:
    """One window of the class, as the current model and curation see it."""

    file: str
    offset: float
    kept: bool  # in the class's training windows (select)
    score: float  # the model's score for the class
    keep_score: float | None  # the score stage's out-of-fold keep score, when the class is curated by the model
    other: str  # the other class the model scores highest
    other_score: float


@dataclass(frozen=True)
class Doubt:
    rank: int
    window: Candidate
    reason: str  # one of REASONS
    why: str  # the reason in words, for the page


def _why(reason: str, c: Candidate, code: str) -> str:
    if reason == "kept_low":
        oof = f", {c.keep_score:.2f} out of fold" if c.keep_score is not None else ""
        return f"kept for training, but the model scores {code} {c.score:.2f}{oof}"
    if reason == "dropped_high":
        return f"dropped by curation, but the model scores {code} {c.score:.2f}"
    if reason == "other_high":
        return f"{c.other} scores {c.other_score:.2f} here ({code} {c.score:.2f})"
    if reason == "top":
        return f"from your recordings: the model is sure of {code} here ({c.score:.2f})"
    return f"the model is unsure: {code} {c.score:.2f}"


def rank_doubts(candidates: Sequence[Candidate], code: str, settings: DoubtSettings = DoubtSettings(),
                judged: Iterable[tuple[str, float]] = (), ignore_other: Iterable[str] = ()) -> list[Doubt]:
    """The queue: up to ``settings.size`` windows not in ``judged`` ((file, offset) pairs), the kinds
    taken in turn, best first within each kind. ``ignore_other`` lists classes whose high score says
    nothing new (the background class: a low own score already says it)."""
    todo = _unjudged(candidates, judged)
    b, skip = settings.boundary, set(ignore_other)

    def low(c: Candidate) -> float:
        return c.keep_score if c.keep_score is not None else c.score

    pools = [
        ("kept_low", sorted((c for c in todo if c.kept), key=low)),
        ("dropped_high", sorted((c for c in todo if not c.kept and c.score >= b), key=lambda c: -c.score)),
        ("other_high", sorted((c for c in todo if c.other not in skip and c.other_score >= b),
                              key=lambda c: -c.other_score)),
    ]
    return _take_turns(todo, pools, code, settings)


def rank_field(candidates: Sequence[Candidate], code: str, settings: DoubtSettings = DoubtSettings(),
               judged: Iterable[tuple[str, float]] = ()) -> list[Doubt]:
    """The field queue of a class: its surest windows in the user's own recordings and its least sure,
    in turn, up to ``settings.size``, none in ``judged`` ((recording stem, offset) pairs, as
    :func:`field_verdicts` reads them)."""
    todo = _unjudged(candidates, judged, lambda c: Path(c.file).stem)
    pools = [("top", sorted((c for c in todo if c.score >= settings.boundary), key=lambda c: -c.score)),
             ("margin", sorted(todo, key=lambda c: abs(c.score - settings.boundary)))]
    return _take_turns(todo, pools, code, settings)


def _unjudged(candidates: Sequence[Candidate], judged: Iterable[tuple[str, float]],
              name: Callable[[Candidate], str] = lambda c: c.file) -> list[Candidate]:
    done = {(f, round(o, 2)) for f, o in judged}
    return [c for c in candidates if (name(c), round(c.offset, 2)) not in done]


def clip_name(stem: str, offset: float, suffix: str = ".wav") -> str:
    """``{stem}-{offset:.2f}{suffix}``: a window's name, as hawk.plot names its image."""
    return f"{stem}-{offset:.2f}{suffix}"


def clip_window(path: Path) -> tuple[str, float] | None:
    """(recording stem, offset) from a name :func:`clip_name` made; None for any other name."""
    stem, _, offset = path.stem.rpartition("-")
    try:
        return stem, float(offset)
    except ValueError:
        return None


def field_verdicts(folder: Path) -> tuple[set[tuple[str, float]], set[tuple[str, float]]]:
    """(recording stem, offset) of the field windows a person said yes to (the clips they confirmed
    in ``folder``, the class's data/field/<CODE>/) and no to (the images in its rejected/); a window
    with both counts as no."""
    from hawk.audio import is_audio_file
    from hawk.curation import REJECTED, images_in

    yes = set()
    for p in folder.iterdir() if folder.is_dir() else []:
        window = clip_window(p)
        if window is not None and is_audio_file(p):  # None: not a clip the review page wrote
            yes.add((window[0], round(window[1], 2)))
    no = {(stem, round(o, 2)) for _, stem, o in images_in(folder / REJECTED) if stem}
    return yes - no, no


def _take_turns(todo: Sequence[Candidate], pools: list[tuple[str, list[Candidate]]], code: str,
                settings: DoubtSettings) -> list[Doubt]:
    """One window from each pool in turn (each window once), then the nearest the boundary."""
    b = settings.boundary
    chosen: dict[tuple[str, float], str] = {}
    heads = [0] * len(pools)
    while len(chosen) < settings.size and any(h < len(p) for h, (_, p) in zip(heads, pools)):
        for k, (reason, pool) in enumerate(pools):
            while heads[k] < len(pool) and (pool[heads[k]].file, pool[heads[k]].offset) in chosen:
                heads[k] += 1
            if heads[k] < len(pool) and len(chosen) < settings.size:
                c = pool[heads[k]]
                chosen[(c.file, c.offset)] = reason
                heads[k] += 1
    by_key = {(c.file, c.offset): c for c in todo}
    for c in sorted(todo, key=lambda c: abs(c.score - b)):
        if len(chosen) >= settings.size:
            break
        chosen.setdefault((c.file, c.offset), "margin")
    return [Doubt(i + 1, by_key[k], r, _why(r, by_key[k], code)) for i, (k, r) in enumerate(chosen.items())]


def candidates(scores: np.ndarray, windows: Sequence[tuple[str, float]], codes: Sequence[str], code: str,
               kept: set[tuple[str, float]], keep_scores: Mapping[str, Mapping[float, float]]) -> list[Candidate]:
    """One :class:`Candidate` per window from the model's (n, classes) ``scores``."""
    own = list(codes).index(code)
    out = []
    for (file, offset), row in zip(windows, scores):
        rest = row.copy()
        rest[own] = -1.0
        other = int(rest.argmax()) if len(rest) > 1 else own
        out.append(Candidate(file, offset, (file, offset) in kept, float(row[own]),
                             keep_scores.get(file, {}).get(offset), codes[other],
                             float(rest[other]) if other != own else 0.0))
    return out


def queue_image(doubt: Doubt) -> str:
    """``{rank}~{stem}-{offset:.2f}.jpeg``: rank first, as search results, so the page sorts by it."""
    return f"{doubt.rank}~{Path(doubt.window.file).stem}-{doubt.window.offset:.2f}.jpeg"


def stored_spectrograms(class_db: Path, windows: Iterable[tuple[str, float]],
                        settings: SpecSettings) -> Iterator[tuple[tuple[str, float], np.ndarray]]:
    """The class database's spectrogram of each of ``windows`` ((file, offset) pairs), reading only
    those rows' images."""
    want = set(windows)
    with SpecDB(class_db) as db:
        ids = [i for i, f, o in db.windows() if (f, o) in want]
        for r in db.spectrograms_by_id(ids).values():
            yield (r.filename, r.offset), decode(r.value, settings.spec_height, settings.spec_width)


def write_queue(out: Path, doubts: Sequence[Doubt], spectrograms: Iterable[tuple[tuple[str, float], np.ndarray]],
                settings: SpecSettings) -> None:
    """Each queued window's image (from ``spectrograms``: ((file, offset), spectrogram) pairs) plus
    ``queue.csv`` (:data:`FIELDS`), into a fresh folder swapped into place, so a reader sees the old
    queue or the new one, never half of one."""
    from hawk.plot import SpecRenderer

    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    want = {(d.window.file, d.window.offset): d for d in doubts}
    if want:
        renderer = SpecRenderer(settings)
        for key, spec in spectrograms:
            if key in want:
                renderer.save(spec, tmp / queue_image(want[key]))
    with atomic_open(tmp / "queue.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for d in doubts:
            c = d.window
            w.writerow([d.rank, c.file, c.offset, d.reason, d.why, f"{c.score:.4f}",
                        "" if c.keep_score is None else f"{c.keep_score:.4f}", c.other, f"{c.other_score:.4f}",
                        int(c.kept), queue_image(d)])
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)


def read_queue(folder: Path) -> list[dict[str, str]]:
    """The rows of a queue folder's ``queue.csv`` (none when there is no queue yet)."""
    path = Path(folder) / "queue.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
