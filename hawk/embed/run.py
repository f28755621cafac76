"""The embed step for one class: an embedding for every spectrogram in the class database.

Incremental: vectors already made by the same embedder for spectrograms still in the database are
reused, so adding recordings embeds only the new ones. The store is also saved every minute while a
class is embedded, so a killed run (the machine, or the driver of a cluster job) resumes from there.
Audio embedders read each recording once and cut it at the spectrograms' offsets; spectrogram
embedders read the stored spectrograms.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hawk.audio import AudioError
from hawk.db import SpecDB, SpecRow
from hawk.embed.base import Embedder, EmbedderError, normalise
from hawk.embed.store import Embeddings, load_embeddings, save_embeddings
from hawk.progress import progress_bar
from hawk.reports import write_skip_report
from hawk.spectrogram import decode

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    embedded: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def embed_class(db_path: str | Path, rec_dir: str | Path, embedder: Embedder, out_path: str | Path,
                report_path: str | Path, code: str, batch_size: int = 64, show_progress: bool = True,
                engine: Any = None, load_embedder: Callable[[], Embedder] | None = None,
                save_every: float = 60.0) -> EmbedResult:
    """Embed what the class's store lacks. With ``engine`` (a :class:`hawk.ray_engine.RayEngine`) the
    recordings are embedded on the cluster, each actor holding its own ``load_embedder()``; this process
    alone writes the store, every ``save_every`` seconds and at the end."""
    start = time.perf_counter()
    result = EmbedResult()
    with SpecDB(db_path) as db:
        groups = list(db.by_recording())
        meta = db.get_meta("spec_settings") or {}
    height, width = meta.get("spec_height", 192), meta.get("spec_width", 384)
    old: dict[int, np.ndarray] = {}
    if Path(out_path).exists():
        try:
            prev = load_embeddings(out_path)
            if prev.embedder == embedder.identity():
                old = dict(zip(prev.ids.tolist(), prev.vectors))
        except EmbedderError as e:
            log.warning("%s; embedding everything again", e)
    saver = _Saver(out_path, {**embedder.identity(), "code": code}, old, save_every)
    ids: list[int] = []
    vecs: list[np.ndarray] = []
    pending_ids: list[int] = []
    pending: list[np.ndarray] = []

    remote: dict[str, np.ndarray | str] = {}
    if engine is not None:
        light = embedder.kind == "audio"  # audio embedders read the recording, not the stored spectrograms
        folder = str(Path(rec_dir).resolve())  # workers run in their own folders
        items = [(folder, f, [replace(r, value=b"") if light else r for r in g if r.id not in old], height, width)
                 for f, g in groups]
        items = [it for it in items if it[2]]
        call = functools.partial(embed_recording, batch_size=batch_size)
        with progress_bar(len(items), f"embed {code} on the cluster", show_progress) as bar:
            for item, out in engine.map_with_model(items, load_embedder, call, lambda item, why: why):
                remote[item[1]] = out
                if not isinstance(out, str):
                    saver.add([r.id for r in item[2]], out)
                bar.update()
    with progress_bar(sum(len(g) for _, g in groups), f"embed {code}", show_progress and engine is None,
                      unit="spec") as bar:

        def flush() -> None:
            if pending:
                vecs.append(normalise(embedder.embed(np.stack(pending))))
                ids.extend(pending_ids)
                saver.add(pending_ids, vecs[-1])
                result.embedded += len(pending)
                bar.update(len(pending))
                pending.clear()
                pending_ids.clear()

        for filename, group in groups:
            reuse = [r for r in group if r.id in old]
            if reuse:
                ids.extend(r.id for r in reuse)
                vecs.append(np.stack([old[r.id] for r in reuse]))
                result.reused += len(reuse)
                bar.update(len(reuse))
            todo = [r for r in group if r.id not in old]
            if not todo:
                continue
            inputs = remote.get(filename) if engine is not None else _inputs_or_reason(embedder, rec_dir, filename,
                                                                                        todo, height, width)
            if isinstance(inputs, str):
                result.skipped.append((filename, inputs))
                log.warning("skipped %s: %s", filename, inputs)
                bar.update(len(todo))
                continue
            if engine is not None:  # embedded by the cluster already
                ids.extend(r.id for r in todo)
                vecs.append(inputs)
                result.embedded += len(todo)
                bar.update(len(todo))
                continue
            for r, x in zip(todo, inputs):
                pending_ids.append(r.id)
                pending.append(x)
                if len(pending) >= batch_size:
                    flush()
        flush()
    vectors = np.concatenate(vecs) if vecs else np.zeros((0, embedder.dim), np.float32)
    save_embeddings(out_path, Embeddings(np.array(ids, np.int64), vectors, saver.meta))
    write_skip_report(report_path, result.skipped)
    result.seconds = time.perf_counter() - start
    return result


class _Saver:
    """Saves the store so far (the vectors reused and those made since) every ``every`` seconds: the
    embed stage's store is a persistent output, so the next run reuses what was saved."""

    def __init__(self, path: str | Path, meta: dict[str, Any], old: dict[int, np.ndarray], every: float):
        self.path, self.meta, self.every = path, meta, every
        self.vectors = dict(old)
        self.last = time.monotonic()

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        self.vectors.update(zip(ids, vectors))
        if time.monotonic() - self.last >= self.every:
            save_embeddings(self.path, Embeddings(np.array(list(self.vectors), np.int64),
                                                  np.stack(list(self.vectors.values())), self.meta))
            self.last = time.monotonic()


def _inputs_or_reason(embedder: Embedder, rec_dir: str | Path, filename: str, rows: list[SpecRow], height: int,
                      width: int) -> np.ndarray | str:
    """The embedder's inputs for ``rows`` of one recording, or why they cannot be made."""
    try:
        if embedder.kind == "audio":
            return embedder.inputs_at(Path(rec_dir) / filename, [r.offset for r in rows])
        return np.stack([decode(r.value, height, width) for r in rows])
    except (AudioError, OSError, ValueError) as e:
        return str(e)


def embed_recording(embedder: Embedder, item: tuple, batch_size: int = 64) -> np.ndarray | str:
    """Cluster worker: normalised vectors of one recording's ``rows`` (``item`` is rec_dir, filename,
    rows, height, width), or the reason it failed."""
    inputs = _inputs_or_reason(embedder, *item)
    if isinstance(inputs, str):
        return inputs
    return embedder.embed_all(inputs, batch_size)


def write_unused(out_path: str | Path, report_path: str | Path, code: str, embedder_name: str) -> None:
    """An empty store marked ``unused``: nothing needed this class's embeddings, so none were made."""
    save_embeddings(out_path, Embeddings(np.zeros(0, np.int64), np.zeros((0, 0), np.float32),
                                         {"name": embedder_name, "version": None, "dim": 0, "code": code, "unused": True}))
    write_skip_report(report_path, [])


def is_unused(path: str | Path) -> bool:
    """True for a store :func:`write_unused` wrote (or none at all)."""
    return not Path(path).exists() or bool(load_embeddings(path).meta.get("unused"))
