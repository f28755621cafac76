"""One folder of spectrogram images under review, and the only code that moves them.

Rejecting moves an image into ``rejected/`` inside the folder (select reads only the folder's own
files), undo moves it back: nothing is ever deleted, and every move is one ``rename`` on one file
system, so it is atomic and the folder on disk is always the truth a reload shows.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf

from hawk.audio import read_clip
from hawk.curation import IMAGE_SUFFIXES, REJECTED, RESTORED, CurationError, ImageName, image_info
from hawk.doubt import clip_name, field_verdicts, read_queue
from hawk.errors import HawkError
from hawk.fsutil import atomic_open

STATES = ("kept", REJECTED)
OPEN = "open"  # a queued window with no verdict yet


class ReviewError(HawkError):
    """A move the folder cannot make (unknown image, read-only folder)."""


def _images(folder: Path) -> Iterator[tuple[str, ImageName]]:
    """(file name, what it says) of every spectrogram image in ``folder``; other files are ignored."""
    for p in folder.iterdir() if folder.is_dir() else []:
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink():  # a link may lead out
            try:
                yield p.name, image_info(p.name)
            except CurationError:
                continue


def _version(*folders: Path) -> str:
    parts = []
    for folder in folders:
        try:
            st = folder.stat()
            parts.append(f"{st.st_mtime_ns}.{sum(1 for _ in os.scandir(folder))}")
        except FileNotFoundError:
            parts.append("-")
    return "/".join(parts)


def _check_move(name: str, to: str, states: tuple[str, ...] = STATES) -> None:
    """Only a plain image name in this folder, to a known state (never a path)."""
    if to not in states or Path(name).name != name or name.startswith("."):
        raise ReviewError(f"bad move of {name!r} to {to!r}")


@dataclass(frozen=True)
class Item:
    name: str
    status: str  # kept | rejected
    stem: str
    offset: float
    rank: int | None
    distance: float | None
    reason: str = ""  # why a queue holds it


class ImageFolder:
    """Images of one class: ``path`` holds the kept ones, ``path/rejected`` the rejected ones.

    ``recordings`` is the class's recordings folder, for the audio of each image. A folder that is a
    pipeline output (search results) is ``writable=False``: DVC would restore any change to it."""

    labels = {"kept": "kept", REJECTED: "rejected"}  # what the page calls each state
    mode = "grid"  # the page's keys: arrows move (grid) or arrows give verdicts (queue)

    def __init__(self, key: str, path: Path, recordings: Path, title: str = "", writable: bool = True,
                 notice: str = "", hint: str = ""):
        self.key, self.path, self.recordings = key, Path(path), Path(recordings)
        self.title = title or key
        self.writable = writable
        self.notice = notice  # shown above the grid: e.g. why verdicts here cannot change training
        self.hint = hint  # shown when the folder holds no image: what fills it
        self._lock = threading.Lock()  # one move at a time, whichever tab asks

    def items(self) -> list[Item]:
        """Every image, kept and rejected, best match first (rank, then distance, then recording and offset)."""
        out = [Item(name, status, i.stem, i.offset, i.rank, i.distance)
               for status, folder in (("kept", self.path), (REJECTED, self.path / REJECTED))
               for name, i in _images(folder)]
        big = float("inf")
        return sorted(out, key=lambda i: (i.rank if i.rank is not None else big,
                                          i.distance if i.distance is not None else big, i.stem, i.offset))

    def state(self) -> dict:
        items = self.items()
        return {"key": self.key, "title": self.title, "writable": self.writable, "labels": self.labels,
                "mode": self.mode, "notice": self.notice, "hint": self.hint,
                **{state: sum(i.status == state for i in items) for state in self.labels},
                "items": [asdict(i) for i in items]}

    def version(self) -> str:
        """What changes whenever an image is added, removed or moved here: the folders' modification
        times and entry counts. Idle pages poll this instead of the whole state (a listing and a parse
        of every image name)."""
        return _version(self.path, self.path / REJECTED)

    def move(self, name: str, to: str) -> Item:
        """Move image ``name`` to ``to`` (kept or rejected); moving it where it already is does nothing,
        so two tabs that both reject an image agree."""
        if not self.writable:
            raise ReviewError(f"{self.path} is a pipeline output and read-only here; curate its copy instead")
        _check_move(name, to)
        where = {"kept": self.path / name, REJECTED: self.path / REJECTED / name}
        with self._lock:
            if name not in {i.name for i in self.items()}:  # only an image the page lists, never a folder
                raise ReviewError(f"{name}: no such image in {self.path}")
            if not where[to].exists():
                src = where[REJECTED if to == "kept" else "kept"]
                if not src.exists():
                    raise ReviewError(f"{name}: no such image in {self.path}")
                where[to].parent.mkdir(exist_ok=True)
                os.rename(src, where[to])
        return next(i for i in self.items() if i.name == name)

    def file_of(self, item: Item) -> Path:
        """Where an item's image is on disk."""
        return self.path / REJECTED / item.name if item.status == REJECTED else self.path / item.name

    def recording_for(self, stem: str) -> Path | None:
        """The recording an image names (by file stem), when there is exactly one."""
        found = [p for p in self.recordings.iterdir() if p.stem == stem and p.is_file()] \
            if self.recordings.is_dir() else []
        return found[0] if len(found) == 1 else None


class DroppedFolder(ImageFolder):
    """What unattended curation dropped (``path``, a pipeline output: never written) and what a person
    restored: a copy in ``restored`` (inside their curation folder, which select reads). Here "kept"
    means restored, "rejected" means left dropped; restoring copies the image atomically, dropping
    again deletes only that copy."""

    labels = {"kept": "restored", REJECTED: "dropped"}

    def __init__(self, key: str, path: Path, restored: Path, recordings: Path, title: str = "", notice: str = ""):
        super().__init__(key, path, recordings, title, writable=True, notice=notice)
        self.restored = Path(restored)

    def items(self) -> list[Item]:
        out = [Item(name, "kept" if (self.restored / name).exists() else REJECTED, i.stem, i.offset, i.rank, i.distance)
               for name, i in _images(self.path)]
        return sorted(out, key=lambda i: (i.stem, i.offset))

    def file_of(self, item: Item) -> Path:
        return self.path / item.name

    def version(self) -> str:
        return _version(self.path, self.restored)

    def move(self, name: str, to: str) -> Item:
        _check_move(name, to)
        src, copy = self.path / name, self.restored / name
        with self._lock:
            if name not in {i.name for i in self.items()}:
                raise ReviewError(f"{name}: no such image in {self.path}")
            if to == "kept":
                _copy_once(src, copy)
            elif to == REJECTED:
                copy.unlink(missing_ok=True)
        return next(i for i in self.items() if i.name == name)


def _windows_in(folder: Path) -> dict[tuple[str, float], list[str]]:
    """(recording stem, offset) -> the names of the images of that window in ``folder``."""
    out: dict[tuple[str, float], list[str]] = {}
    for name, info in _images(folder):
        out.setdefault((info.stem, round(info.offset, 2)), []).append(name)
    return out


class QueueFolder(ImageFolder):
    """A doubt queue (``path``, a pipeline output: never written): the windows the model chose for a
    verdict, best first, each with its reason (hawk/doubt.py). A verdict is a copy of the window's
    image in the person's curation folder, which select reads: yes into ``restored/``, no into
    ``rejected/``; back to open deletes those copies only. A window's state is read by recording and
    offset, so a verdict given on another page (a restore among the drops) shows here too."""

    labels = {"kept": "yes", REJECTED: "no", OPEN: "to review"}
    mode = "queue"

    def __init__(self, key: str, path: Path, curation: Path, recordings: Path, title: str = "",
                 writable: bool = True, notice: str = "", hint: str = ""):
        super().__init__(key, path, recordings, title, writable, notice, hint)
        self.curation = Path(curation)
        self.verdict_dirs = {"kept": self.curation / RESTORED, REJECTED: self.curation / REJECTED}

    def _verdicts(self) -> tuple[set[tuple[str, float]], set[tuple[str, float]]]:
        """The windows said yes to and no to, by (recording stem, offset)."""
        return set(_windows_in(self.verdict_dirs["kept"])), set(_windows_in(self.verdict_dirs[REJECTED]))

    def items(self) -> list[Item]:
        yes, no = self._verdicts()
        out = []
        for row in read_queue(self.path):
            try:
                info = image_info(row["image"])
            except CurationError:
                continue
            if not (self.path / row["image"]).is_file():
                continue
            key = (info.stem, round(info.offset, 2))
            status = REJECTED if key in no else "kept" if key in yes else OPEN
            out.append(Item(row["image"], status, info.stem, info.offset, info.rank, None, row.get("why", "")))
        return sorted(out, key=lambda i: i.rank or 0)

    def file_of(self, item: Item) -> Path:
        return self.path / item.name

    def version(self) -> str:
        return _version(self.path, *self.verdict_dirs.values())

    def move(self, name: str, to: str) -> Item:
        """Give (``kept``: yes, ``rejected``: no) or take back (``open``) a verdict."""
        if not self.writable:
            raise ReviewError(f"verdicts here cannot change training: {self.notice}")
        _check_move(name, to, (*STATES, OPEN))
        with self._lock:
            item = next((i for i in self.items() if i.name == name), None)
            if item is None:
                raise ReviewError(f"{name}: no such image in {self.path}")
            self._give(item, to)
        return next(i for i in self.items() if i.name == name)

    def _give(self, item: Item, to: str) -> None:
        """Saying yes to a window the curation page rejected moves that image back into the curation
        folder, where the curation page had taken it from."""
        canonical = clip_name(item.stem, item.offset, ".jpeg")
        key = (item.stem, round(item.offset, 2))
        for state, folder in self.verdict_dirs.items():
            if state == to:
                _copy_once(self.path / item.name, folder / canonical)
                continue
            for other in _windows_in(folder).get(key, []):
                if other == canonical or state == "kept":
                    (folder / other).unlink(missing_ok=True)  # a copy a verdict (or a restore) made
                else:
                    os.rename(folder / other, self.curation / other)  # the curation page's reject, undone


def _copy_once(src: Path, dest: Path) -> None:
    """``src`` to ``dest`` unless it is there, through a temporary file: never half a file."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)


class FieldQueueFolder(QueueFolder):
    """The field queue of a class (stages/field.py): windows of the user's own recordings, found
    under ``recordings`` (infer.input's folder) by the queue's ``file`` column. A yes writes the
    window's 3 s as a WAV clip into ``clips`` (data/field/<CODE>/), which pickle makes a training
    row of the class (hawk.specset); a no copies its image and writes its clip into ``clips/rejected/`` (the
    embedding head trains on that clip as a negative of the class: hawk.negatives); back to open
    deletes whichever is there."""

    def __init__(self, key: str, path: Path, clips: Path, recordings: Path, sample_rate: int, segment_len: float,
                 title: str = "", hint: str = ""):
        super().__init__(key, path, clips, recordings, title, hint=hint)
        self.verdict_dirs = {"kept": self.curation, REJECTED: self.curation / REJECTED}
        self.sample_rate, self.segment_len = sample_rate, segment_len

    def _verdicts(self) -> tuple[set[tuple[str, float]], set[tuple[str, float]]]:
        return field_verdicts(self.curation)

    def recording_for(self, stem: str) -> Path | None:
        files = {Path(r["file"]).stem: r["file"] for r in read_queue(self.path)}
        path = (self.recordings / files[stem]).resolve() if stem in files else None
        return path if path is not None and path.is_relative_to(self.recordings.resolve()) and path.is_file() else None

    def _give(self, item: Item, to: str) -> None:
        clip = self.curation / clip_name(item.stem, item.offset)
        rejected = self.verdict_dirs[REJECTED]
        no_clip, image = rejected / clip.name, rejected / clip_name(item.stem, item.offset, ".jpeg")
        if to == "kept":
            self._write_clip(item, clip)
        elif to == REJECTED:  # the clip too: the embedding head trains on it as a negative of the class
            self._write_clip(item, no_clip)
            _copy_once(self.path / item.name, image)
        if to != "kept":
            clip.unlink(missing_ok=True)
        if to != REJECTED:
            image.unlink(missing_ok=True)
            no_clip.unlink(missing_ok=True)

    def _write_clip(self, item: Item, clip: Path) -> None:
        """The window's 3 s of its recording as a WAV file at ``clip`` (once)."""
        if clip.exists():
            return
        rec = self.recording_for(item.stem)
        if rec is None:
            raise ReviewError(f"{item.stem}: its recording is no longer in {self.recordings}")
        audio = read_clip(rec, self.sample_rate, item.offset, self.segment_len)
        clip.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(clip, "wb") as f:
            sf.write(f, audio, self.sample_rate, format="WAV", subtype="PCM_16")
