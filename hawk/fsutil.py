"""Small file-system helpers: atomic writes, exclusive locks, safe file names and the cache folder."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from hawk.errors import HawkError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", durable: bool = True, **kwargs) -> Iterator[IO]:
    """Write to a temp file beside ``path`` and rename it into place only when the block succeeds,
    so readers (and a crash) never see a half-written file. ``durable=False`` skips the fsync, for
    writers that sync a whole batch of files at once (a killed process loses nothing either way; a
    power cut can)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LockedError(HawkError):
    """Another process holds the lock: two writers of one file would corrupt it."""


@contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` for the block, or raise :class:`LockedError` at once.

    The kernel releases the lock when its holder dies, however it dies, so a killed run never leaves
    a stale lock behind. The file itself stays (removing it would let a third process lock a new file
    while a second still waits on the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise LockedError(f"{what} is in use by another process (pid {holder}); wait for it to finish "
                              "and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so large files cost no memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def safe_name(name: str, default: str = "file") -> str:
    """A file name that cannot escape its folder: no separators, no leading dots, no odd characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = _UNSAFE.sub("_", base).lstrip(".-_")
    return clean[:150] or default


def cache_dir() -> Path:
    """Exported models and probes live outside the project (each a pure function of a model file):
    ``$HAWK_CACHE`` or ``$XDG_CACHE_HOME/hawk`` (default ``~/.cache/hawk``), then ``runtimes/``."""
    root = os.environ.get("HAWK_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hawk"
    return Path(root) / "runtimes"
