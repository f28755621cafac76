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

from hawk.curation import IMAGE_SUFFIXES, CurationError, ImageName, image_info
from hawk.errors import HawkError

REJECTED = "rejected"
STATES = ("kept", REJECTED)


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


def _check_move(name: str, to: str) -> None:
    """Only a plain image name in this folder, to a known state (never a path)."""
    if to not in STATES or Path(name).name != name or name.startswith("."):
        raise ReviewError(f"bad move of {name!r} to {to!r}")


@dataclass(frozen=True)
class Item:
    name: str
    status: str  # kept | rejected
    stem: str
    offset: float
    rank: int | None
    distance: float | None


class ImageFolder:
    """Images of one class: ``path`` holds the kept ones, ``path/rejected`` the rejected ones.

    ``recordings`` is the class's recordings folder, for the audio of each image. A folder that is a
    pipeline output (search results) is ``writable=False``: DVC would restore any change to it."""

    labels = {"kept": "kept", REJECTED: "rejected"}  # what the page calls the two states

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
                "notice": self.notice, "hint": self.hint,
                "kept": sum(i.status == "kept" for i in items), "rejected": sum(i.status == REJECTED for i in items),
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
            if to == "kept" and not copy.exists():
                self.restored.mkdir(parents=True, exist_ok=True)
                tmp = self.restored / f".{name}.part"
                shutil.copyfile(src, tmp)
                os.replace(tmp, copy)
            elif to == REJECTED:
                copy.unlink(missing_ok=True)
        return next(i for i in self.items() if i.name == name)
