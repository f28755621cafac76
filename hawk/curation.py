"""From kept images to training spectrograms (the seed's extract_by_image.py) and re-extraction.

A person curates by deleting images. The images that remain name their spectrograms: either
``{stem}-{offset:.2f}.jpeg`` (plots) or ``{rank}~{stem}-{offset:.2f}~{distance:.3f}.jpeg`` (search).
Each name is resolved to its recording and the exact stored offset (the nearest stored offset within
half a hundredth of a second, so 1.5 and 2.0 never collide). The spectrogram is copied from the class
database when that was made with the current settings, and otherwise extracted again from the audio
at that offset with the current settings.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path


from hawk.audio import AudioError, read_mono
from hawk.db import SpecDB
from hawk.errors import HawkError
from hawk.fsutil import atomic_open
from hawk.progress import progress
from hawk.spectrogram import SpecSettings, SpectrogramMaker, encode

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_NAME = re.compile(r"^(?:(?P<rank>\d+)~)?(?P<stem>.+)-(?P<offset>\d+(?:\.\d+)?)(?:~(?P<dist>-?\d+(?:\.\d+)?))?$")


class CurationError(HawkError, ValueError):
    pass


@dataclass(frozen=True)
class ImageName:
    """What an image's name says: its recording stem and offset, and for search matches rank and distance."""

    stem: str
    offset: float
    rank: int | None = None
    distance: float | None = None


def image_info(name: str) -> ImageName:
    """Parse either naming scheme (see the module docstring)."""
    p = Path(name)
    m = _NAME.match(p.stem) if p.suffix.lower() in IMAGE_SUFFIXES else None
    if not m:
        raise CurationError(f"{name}: not a spectrogram image name ({{stem}}-{{offset}}.jpeg or "
                            "{rank}~{stem}-{offset}~{distance}.jpeg)")
    return ImageName(m["stem"], float(m["offset"]), int(m["rank"]) if m["rank"] else None,
                     float(m["dist"]) if m["dist"] else None)


def parse_image_name(name: str) -> tuple[str, float]:
    """(recording stem, offset as written) from either naming scheme."""
    info = image_info(name)
    return info.stem, info.offset


@dataclass
class Picks:
    """Chosen spectrograms per recording file name (exact stored offsets), and what could not be used."""

    offsets: dict[str, list[float]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, more: dict[str, list[float]]) -> None:
        """Also choose ``more`` (file -> offsets)."""
        for f, offs in more.items():
            self.offsets[f] = sorted(set(self.offsets.get(f, [])) | set(offs))

    def windows(self) -> set[tuple[str, float]]:
        """Every chosen (file, offset)."""
        return {(f, o) for f, offs in self.offsets.items() for o in offs}


def resolve(items: Iterable[tuple[str, str, float]], stored: dict[str, list[float]],
            exclude: set[str] = frozenset()) -> Picks:
    """``items``: (where it came from, recording stem or file name, offset). ``stored``: the class
    database's offsets per file name. Unknown recordings, offsets and excluded files are skipped."""
    by_stem: dict[str, list[str]] = {}
    for fname in stored:
        by_stem.setdefault(Path(fname).stem, []).append(fname)
    picks = Picks()
    chosen: dict[str, set[float]] = {}
    for where, name, offset in items:
        files = [name] if name in stored else by_stem.get(Path(name).stem if "." in name else name, [])
        if not files:
            picks.skipped.append((where, "no recording of that name in the class database"))
            continue
        if len(files) > 1:
            picks.skipped.append((where, f"ambiguous: recordings {', '.join(sorted(files))} share that name"))
            continue
        fname = files[0]
        if fname in exclude:
            picks.skipped.append((where, "recording left out as a duplicate (dedup)"))
            continue
        near = min(stored[fname], key=lambda o: abs(o - offset))
        if abs(near - offset) > 0.005 + 1e-9:
            picks.skipped.append((where, f"no spectrogram at {offset} s in {fname}"))
            continue
        chosen.setdefault(fname, set()).add(near)
    picks.offsets = {f: sorted(o) for f, o in sorted(chosen.items())}
    return picks


def images_in(folder: Path) -> list[tuple[str, str, float]]:
    """(image name, stem, offset) for every image in a curation folder; other files are ignored."""
    out = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            try:
                stem, offset = parse_image_name(p.name)
            except CurationError:
                stem, offset = "", -1.0  # resolve() reports it as unknown
            out.append((p.name, stem, offset))
    return out


@dataclass
class SelectResult:
    recordings: int = 0
    spectrograms: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def build_db(out_db: Path, picks: dict[str, list[float]], rec_dir: Path, source_db: Path | None,
             settings: SpecSettings, name: str, code: str, category: str = "bird",
             show_progress: bool = True,
             choose: Callable[[str, list[float]], list[float]] | None = None) -> SelectResult:
    """A fresh HawkEars-schema database holding the spectrograms at ``picks`` (file -> offsets).
    Provenance is copied from ``source_db`` when given. When ``source_db`` was made with ``settings``,
    its stored spectrograms are copied (they are what re-extraction would give, bit for bit); otherwise
    each is extracted again from the audio in ``rec_dir``. ``choose(file, offsets)`` may narrow each
    recording's offsets (a recording left with none is not written).
    Written beside ``out_db`` and renamed into place, so a crash never leaves a half database."""
    start = time.perf_counter()
    result = SelectResult()
    tmp = out_db.with_name(f".{out_db.name}.part")
    tmp.unlink(missing_ok=True)
    out_db.parent.mkdir(parents=True, exist_ok=True)
    maker = None  # made on first use: copying needs no torch
    today = time.strftime("%Y-%m-%d")
    with SpecDB(tmp) as db, (SpecDB(source_db) if source_db is not None else nullcontext()) as src:
        prov = src.provenance() if src else {}
        reuse = src is not None and src.get_meta("spec_settings") == settings.identity()
        with db.transaction():
            db.set_meta("spec_settings", settings.identity())
            db.set_meta("class", {"name": name, "code": code})
            sub = db.subcategory_id(name, code, category)
        for fname, offsets in progress(picks.items(), len(picks), f"select {code}", show_progress):
            if choose is not None:
                offsets = choose(fname, offsets)
            if not offsets:
                continue
            seconds, stored = src.stored(fname, code) if reuse else (0.0, {})
            try:
                if stored:
                    rows = [(o, stored[o]) for o in offsets]
                else:
                    signal = read_mono(rec_dir / fname, settings.sample_rate)
                    seconds = len(signal) / settings.sample_rate
                    maker = maker or SpectrogramMaker(settings)
                    rows = [(o, encode(x, settings.compress_level)) for o, x in zip(offsets, maker.at(signal, offsets))]
            except (AudioError, OSError, ValueError) as e:
                result.skipped.append((fname, str(e)))
                log.warning("skipped %s: %s", fname, e)
                continue
            p = dict(prov.get(fname) or {"source": "local"})
            with db.transaction():
                rec = db.insert_recording(db.source_id(p.get("source") or "local"), sub, fname, seconds, p)
                result.spectrograms += db.insert_spectrograms(rec, rows, today)
            result.recordings += 1
    tmp.replace(out_db)
    result.seconds = time.perf_counter() - start
    return result


def merge_dbs(parts: list[Path], out_db: Path) -> int:
    """One training database from per-class ones (same settings), atomically; returns spectrograms."""
    tmp = out_db.with_name(f".{out_db.name}.part")
    tmp.unlink(missing_ok=True)
    settings = None
    total = 0
    today = time.strftime("%Y-%m-%d")
    with SpecDB(tmp) as out:
        for part in parts:
            with SpecDB(part) as db:
                meta, cls = db.get_meta("spec_settings"), db.get_meta("class")
                if settings is not None and meta != settings:
                    raise CurationError(f"{part}: made with other spectrogram settings than {parts[0]}")
                settings = meta
                cat = db.conn.execute("SELECT c.Name FROM Category c JOIN Subcategory s ON s.CategoryID = c.ID "
                                      "LIMIT 1").fetchone()
                prov = db.provenance()
                with out.transaction():
                    out.set_meta("spec_settings", meta)
                    sub = out.subcategory_id(cls["name"], cls["code"], cat[0] if cat else "bird")
                    for rec_id, fname, seconds, source in db.conn.execute(
                            "SELECT r.ID, r.FileName, r.Seconds, s.Name FROM Recording r JOIN Source s "
                            "ON s.ID = r.SourceID ORDER BY r.ID").fetchall():
                        new = out.insert_recording(out.source_id(source), sub, fname, seconds or 0, prov[fname])
                        rows = db.conn.execute("SELECT Offset, Value FROM Spectrogram WHERE RecordingID = ? "
                                               "ORDER BY Offset", (rec_id,)).fetchall()
                        total += out.insert_spectrograms(new, rows, today)
    tmp.replace(out_db)
    return total


def seed_curation(images: Path, folder: Path) -> int:
    """Copy images into a curation folder, never one that was copied before (so a deleted image stays
    deleted). The folder's ``.copied`` file remembers what was copied."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / ".copied"
    copied = set(log_path.read_text(encoding="utf-8").split("\n")) if log_path.exists() else set()
    new = [p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in copied]
    for p in new:
        shutil.copy2(p, folder / p.name)
    with atomic_open(log_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted((copied | {p.name for p in new}) - {""})))
    return len(new)


RESTORED, REJECTED = "restored", "rejected"  # a person's verdicts on single windows, inside the curation folder


def verdicts(folder: Path, stored: dict[str, list[float]], exclude: set[str] = frozenset()) -> tuple[Picks, Picks]:
    """A person's verdicts on single windows, whatever curation chose: the images in
    ``folder/restored/`` (yes: train on it) and ``folder/rejected/`` (no: never train on it),
    resolved against the class database's ``stored`` offsets. The review page writes both."""
    return (resolve(images_in(folder / RESTORED), stored, exclude),
            resolve(images_in(folder / REJECTED), stored, exclude))


class ThresholdFilter:
    """Curation as a chooser for :func:`build_db`: keeps the segments whose stored value (activity in
    dB, or the model's out-of-fold score) is at least ``minimum``, and the ``restored`` ones (a
    person's choice) whatever their value, but never a ``rejected`` one (a person's "no"); records what
    it drops by value as (file, offset, value), in ``overruled`` the restored ones it would have
    dropped, and in ``refused`` the rejected ones. A segment with no stored value is kept, so with no
    values this only applies the person's verdicts."""

    def __init__(self, values: dict[str, dict[float, float]], minimum: float,
                 restored: dict[str, list[float]] | None = None, rejected: dict[str, list[float]] | None = None):
        self.values, self.minimum = values, minimum
        self.restored, self.rejected = restored or {}, rejected or {}
        self.dropped: list[tuple[str, float, float]] = []
        self.overruled: list[tuple[str, float, float]] = []
        self.refused: list[tuple[str, float]] = []

    def __call__(self, fname: str, offsets: Iterable[float]) -> list[float]:
        measured, keep = self.values.get(fname, {}), set(self.restored.get(fname, ()))
        no = set(self.rejected.get(fname, ()))
        kept = []
        for o in offsets:
            v = measured.get(o)
            if o in no:
                self.refused.append((fname, o))
            elif v is None or v >= self.minimum:
                kept.append(o)
            elif o in keep:
                kept.append(o)
                self.overruled.append((fname, o, round(v, 4)))
            else:
                self.dropped.append((fname, o, round(v, 4)))
        return kept
