"""Inference (the seed's analyze.py): an ensemble of checkpoints scores every segment of every recording.

Members are CNN checkpoints (spectrogram in) and embedding heads (hawk/embed_head.py: the segment's
embedding in, made by the embedder the head was trained with); each member counts once in the mean.

Recordings are decoded and turned into spectrograms in a background thread while the models run, so
decoding and the network overlap; the CNNs' batches run across files, so short recordings fill them.
Segments start every ``segment_len - overlap`` seconds (HawkEars: 3 s segments, 1.5 s overlap); the
last partial segment is zero-padded so the end of a recording is heard too. Scores are the mean of
the models' sigmoid outputs, then Platt-calibrated: ``sigmoid(a * logit(score) + b)``, the same numpy
function wherever scores are produced.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import glob
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hawk.audio import AUDIO_EXTENSIONS, RESAMPLER_WARMUP, AudioError, duration, is_audio_file, iter_mono
from hawk.ckpt import CheckpointError, load_checkpoint, model_from_checkpoint
from hawk.embed_head import NAME as HEAD
from hawk import runtime as runtimes
from hawk.errors import HawkError
from hawk.runtime import Runner
from hawk.spectrogram import SpecSettings, SpectrogramMaker

log = logging.getLogger(__name__)
HEADERS_PER_TASK = 256  # recordings whose header one Ray task reads (milliseconds each)
PART_SECONDS = 300.0  # the local engine decodes and scores a longer recording in parts of about this
# length, so the windows held stay bounded on recordings of any length (a 2-h file: peak 1.3 GB, 2.0 GB whole)


class EnsembleError(HawkError, ValueError):
    pass


@dataclass
class Ensemble:
    """Every checkpoint of a folder; all must share one class list and one set of audio settings, and
    the embedding heads one embedder."""

    paths: list[Path]
    models: list[Runner]  # CNNs, each on its runtime (hawk/runtime.py)
    classes: list[tuple[str, str]]  # (name, code) in output order
    settings: SpecSettings
    device: str
    mlflow_run_ids: list[str]
    heads: list[torch.nn.Module] = field(default_factory=list)
    embedder: Any = None  # the heads' hawk.embed.Embedder
    runtimes: list[str] = field(default_factory=list)  # where each CNN runs
    runtime: str = "auto"  # the runtime asked for; Ray workers load with it too

    @property
    def members(self) -> int:
        return len(self.models) + len(self.heads)

    @classmethod
    def load(cls, source: str | Path | list[Path], device: str = "auto", runtime: str = "auto") -> "Ensemble":
        """Every ``*.ckpt`` of a folder, one checkpoint file, or a list of checkpoint files; the CNNs
        run on ``runtime`` (:mod:`hawk.runtime`: auto, openvino, onnxruntime or torch)."""
        if isinstance(source, list):
            paths = [Path(p) for p in source]
        else:
            source = Path(source)
            paths = sorted(source.glob("*.ckpt")) if source.is_dir() else [source] if source.is_file() else []
        if not paths:
            raise EnsembleError(f"{source}: no checkpoints (*.ckpt); run the train stage first")
        device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        try:
            ckpts = [load_checkpoint(p) for p in paths]
        except CheckpointError as e:
            raise EnsembleError(str(e)) from e
        lists = {}
        for p, c in zip(paths, ckpts):
            lists.setdefault(tuple((k["name"], k["code"]) for k in c["classes"]), []).append(p.name)
        if len(lists) > 1:
            detail = "; ".join(f"{', '.join(names)}: {len(k)} classes ({', '.join(c for _, c in k[:4])}...)"
                               for k, names in lists.items())
            raise EnsembleError(f"{source}: checkpoints trained on different class lists cannot be ensembled: {detail}")
        specs = {str(sorted(c["spec_settings"].items())) for c in ckpts}
        if len(specs) > 1:
            raise EnsembleError(f"{source}: checkpoints made with different audio settings cannot be ensembled")
        heads = {p.name: c for p, c in zip(paths, ckpts) if c["model_name"] == HEAD}
        settings = SpecSettings.from_mapping(ckpts[0]["spec_settings"])
        shape = (settings.spec_height, settings.spec_width)
        built = [runtimes.build(lambda c=c: fuse_for_inference(model_from_checkpoint(c)), p, shape, runtime, device)
                 for p, c in zip(paths, ckpts) if c["model_name"] != HEAD]
        runs = [c.get("extra", {}).get("mlflow_run_id") for c in ckpts]
        return cls(paths, [run for run, _ in built], list(next(iter(lists))), settings, device,
                   [r for r in dict.fromkeys(runs) if r], [model_from_checkpoint(c) for c in heads.values()],
                   _head_embedder(source, heads) if heads else None, [name for _, name in built], runtime)

    @property
    def codes(self) -> list[str]:
        return [c for _, c in self.classes]

    def scores(self, specs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, height, width) uint8 spectrograms -> (n, classes) mean sigmoid score of the models."""
        out = []
        for start in range(0, len(specs), batch_size):
            x = specs[start : start + batch_size, None].astype(np.float32) / np.float32(255)
            out.append(np.mean([runtimes.sigmoid(m(x)) for m in self.models], axis=0, dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    @torch.inference_mode()
    def stored_scores(self, specs: np.ndarray | None, vectors: np.ndarray | None, batch_size: int = 64) -> np.ndarray:
        """Mean score of the members that can score windows already stored: the CNNs from their uint8
        spectrograms, the heads from their embeddings (embed stage); a member whose input is None
        sits out. Why: scoring a class's stored windows (doubt) needs no audio decoding."""
        total, used = 0.0, 0
        if self.models and specs is not None:
            total, used = self.scores(specs, batch_size) * len(self.models), len(self.models)
        if self.heads and vectors is not None:
            x = torch.from_numpy(np.ascontiguousarray(vectors, np.float32))
            total, used = total + sum(torch.sigmoid(h(x)).numpy() for h in self.heads), used + len(self.heads)
        if not used:
            raise EnsembleError("no member of the ensemble can score these windows (spectrograms for the CNNs, "
                                "embeddings for the embedding heads)")
        return np.asarray(total / used, np.float32)


    @torch.inference_mode()
    def window_scores(self, res: dict[str, Any], batch_size: int = 64, cnn: np.ndarray | None = None) -> np.ndarray:
        """Mean score of every member for the segments of one :func:`file_segments` result; the heads
        embed the segments at the same offsets from the recording itself. ``cnn``: the CNNs' mean
        scores of these segments when already made (in a batch shared with other files)."""
        if not len(res["offsets"]):  # a part past a recording's end
            return np.zeros((0, len(self.classes)), np.float32)
        if self.models and cnn is None:
            cnn = self.scores(res["specs"], batch_size)
        total = cnn * len(self.models) if self.models else 0.0
        if self.heads:
            x = torch.from_numpy(self.embedder.embed_file(res["path"], res["offsets"].tolist(), batch_size))
            total = total + sum(torch.sigmoid(h(x)).numpy() for h in self.heads)
        return np.asarray(total / self.members, np.float32)


def _head_embedder(source: Any, heads: dict[str, dict[str, Any]]) -> Any:
    """The one embedder every head (checkpoint file name -> checkpoint) was trained with, built from
    its recorded options and checked against the identity (name, version, dim) recorded beside them."""
    from hawk.embed import EmbedderError, create_embedder
    from hawk.embed.store import check_same_embedder

    try:  # the identity decides; options such as threads do not change the vectors
        check_same_embedder({name: c["extra"]["embedder"]["identity"] for name, c in heads.items()})
    except EmbedderError as e:
        raise EnsembleError(f"{source}: embedding heads cannot be ensembled: {e}") from e
    desc = next(iter(heads.values()))["extra"]["embedder"]
    try:
        options = dict(desc["config"])
        embedder = create_embedder(options.pop("name"), **options)
    except EmbedderError as e:
        raise EnsembleError(f"{source}: the embedding head's embedder cannot be made: {e}") from e
    if embedder.identity() != desc["identity"]:
        raise EnsembleError(f"{source}: the embedding head was trained on {desc['identity']} embeddings, "
                            f"but this installation makes {embedder.identity()}")
    return embedder


def fuse_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each batch norm into the convolution before it (same outputs, fewer passes over memory).
    Models torch.fx cannot trace are returned as they are."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval())
    except Exception as e:  # not traceable: run unfused
        log.debug("batch-norm folding skipped: %s", e)
        return model.eval()


def calibrate(scores: np.ndarray, a: float = 1.0, b: float = 0.0) -> np.ndarray:
    """Platt scaling of scores in (0, 1): sigmoid(a * logit(s) + b); a=1, b=0 changes nothing."""
    if a == 1.0 and b == 0.0:
        return scores
    s = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return (1 / (1 + np.exp(-(a * np.log(s / (1 - s)) + b)))).astype(np.float32)


def segment_settings(settings: SpecSettings, overlap: float) -> SpecSettings:
    if not 0 <= overlap < settings.segment_len:
        raise ValueError(f"overlap must be in [0, {settings.segment_len}) seconds, got {overlap}")
    return SpecSettings(**{**settings.to_dict(), "offset": settings.segment_len - overlap})


def segment_count(seconds: float, settings: SpecSettings) -> int:
    """How many segments cover a recording: at least one, the last zero-padded to its end."""
    step, seg = settings.offset, settings.segment_len
    return 1 if seconds <= seg else math.ceil((seconds - seg) / step - 0.05) + 1


def file_segments(path: str, settings: SpecSettings, spectrograms: bool = True, first: int = 0,
                  count: int | None = None) -> dict[str, Any]:
    """Worker: uint8 spectrograms of one recording at ``settings.offset`` steps (end zero-padded).
    Without ``spectrograms`` only the offsets (an ensemble of embedding heads alone reads the audio
    itself, at its embedder's sample rate).

    ``first`` and ``count`` ask for one part of a long recording: segments ``first`` to
    ``first + count - 1`` (``count`` None: to the end), equal to the whole call's within float
    rounding. Decoding starts :data:`hawk.audio.RESAMPLER_WARMUP` seconds early, where neither the resampler's fresh
    start nor the STFT's reflected edge reaches a kept segment, and stops a little after the last.
    ``end`` says whether the part reached the end of the recording (``seconds`` is then its length)."""
    try:
        sr = settings.sample_rate
        lead = min(first, math.ceil(RESAMPLER_WARMUP / settings.offset))
        base_k = first - lead  # the segment where the decoded stream starts
        base = int(round(base_k * settings.offset * sr))  # samples before it
        limit = None if count is None else int(round((lead + count) * settings.offset * sr + settings.segment_len * sr)) \
            + 2 * settings.n_fft
        info, blocks = iter_mono(path, sr, settings.block_seconds, settings.check_seconds, base_k * settings.offset)
        seen, end = 0, True

        def stream() -> Iterator[np.ndarray]:
            nonlocal seen, end
            for b in blocks:
                if limit is not None and seen + len(b) >= limit:
                    b, end = b[: limit - seen], False
                seen += len(b)
                yield b
                if not end:
                    blocks.close()
                    return

        def padded(head: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            yield head
            yield from rest
            if end:
                n = segment_count((base + seen) / sr, settings)
                missing = int(round(((n - 1) * settings.offset + settings.segment_len) * sr)) - base - seen
                if missing > 0:
                    yield np.zeros(missing, np.float32)

        shape = (0, settings.spec_height, settings.spec_width)
        rest = stream()
        head = next(rest, None)
        if head is None:  # nothing from here on: an empty file, or a part past a recording's real end
            if not first:
                return {"path": path, "error": "no audio samples (empty or corrupt file)"}
            return {"path": path, "offsets": np.zeros(0), "specs": np.zeros(shape, np.uint8), "seconds": None, "end": True}
        ks, specs = [], []
        if spectrograms:
            for offset, spec in SpectrogramMaker(settings).segments(padded(head, rest)):
                ks.append(base_k + int(round(offset / settings.offset)))
                specs.append(np.round(spec * 255).astype(np.uint8))
        else:
            for _ in rest:
                pass
        stop = segment_count((base + seen) / sr, settings) if end else first + count  # past the last kept segment
        if count is not None:
            stop = min(stop, first + count)
        if not spectrograms:
            ks = list(range(base_k, stop))
        keep = [i for i, k in enumerate(ks) if first <= k < stop]
        return {"path": path, "offsets": np.array([ks[i] * settings.offset for i in keep]),
                "specs": np.stack([specs[i] for i in keep]) if specs and keep else np.zeros(shape, np.uint8),
                "seconds": (base + seen) / sr, "end": end}
    except AudioError as e:
        return {"path": path, "error": e.reason}
    except Exception as e:  # one bad recording never stops the run
        return {"path": path, "error": f"{type(e).__name__}: {e}"}


def iter_segments(files: list[Path], settings: SpecSettings, prefetch: int = 1, spectrograms: bool = True,
                  part_seconds: float | None = PART_SECONDS) -> Iterator[dict[str, Any]]:
    """Spectrograms of each file, in order; a recording longer than ``part_seconds`` comes as
    consecutive results of its parts (:func:`recording_parts`; ``parts`` says how many), so no more
    than a part's windows are ever held. With ``prefetch`` > 0 a background thread decodes and
    transforms up to that many parts ahead while the caller runs the model (decoding, resampling, the
    STFT and the network all release the GIL; a thread starts instantly where a process would import
    torch again)."""

    def results() -> Iterator[dict[str, Any]]:
        for f in files:
            try:
                cuts = recording_parts(str(f), settings, part_seconds)
            except Exception:  # an unreadable header: file_segments says why
                cuts = [(0, None)]
            for first, count in cuts:
                yield file_segments(str(f), settings, spectrograms, first, count) | {"parts": len(cuts)}

    if prefetch <= 0:
        yield from results()
        return
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        for res in results():
            if stop.is_set():
                return
            q.put(res)
        q.put(None)

    worker = threading.Thread(target=produce, name="hawk-decode", daemon=True)
    worker.start()
    try:
        while (res := q.get()) is not None:
            yield res
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def find_recordings(source: str | Path) -> list[Path]:
    """The recordings ``source`` names, sorted: one recording; every audio file under a folder
    (recursively); a glob (``/data/ARU/**/*.wav``); or a CSV file list (a ``path`` column, or the first
    column; relative paths are relative to the CSV's folder)."""
    text = str(source)
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _listed(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if is_audio_file(p))
    if any(ch in text for ch in "*?["):
        files = sorted(p for p in map(Path, glob.glob(text, recursive=True)) if is_audio_file(p))
        if not files:
            raise AudioError(source, "the pattern matches no recordings")
        return files
    raise AudioError(source, "no such recording or folder")


def _listed(csv_path: Path) -> list[Path]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise AudioError(csv_path, "empty file list")
    col = rows[0].index("path") if "path" in rows[0] else 0
    header = "path" in rows[0] or Path(rows[0][0]).suffix.lower() not in AUDIO_EXTENSIONS
    body = rows[1:] if header else rows
    files = [p if p.is_absolute() else csv_path.parent / p for p in (Path(r[col]) for r in body if r and r[col].strip())]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise AudioError(csv_path, f"{len(missing)} listed recording(s) do not exist, e.g. {missing[0]}")
    return sorted(files)


def recordings_root(source: str | Path, files: list[Path]) -> Path:
    """The folder label files mirror: the folder given, else the deepest folder holding every file."""
    source = Path(source)
    if source.is_dir():
        return source
    if not files:
        return source.parent
    return Path(os.path.commonpath([str(f.parent) for f in files]))


@dataclass
class FileScores:
    path: Path
    offsets: np.ndarray
    scores: np.ndarray  # (segments, classes), calibrated
    seconds: float | None  # None for a part past a recording's real end


@dataclass
class ScoreRun:
    files: list[FileScores] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def audio_seconds(self) -> float:
        return sum(f.seconds for f in self.files)


def score_segments(ensemble: Ensemble, res: dict[str, Any], calibration: tuple[float, float] = (1, 0),
                   batch_size: int = 64, cnn: np.ndarray | None = None) -> FileScores | tuple[str, str]:
    """The calibrated scores of one :func:`file_segments` result, or (path, reason) for a failed one
    (``cnn``: see :meth:`Ensemble.window_scores`)."""
    if "error" in res:
        return res["path"], res["error"]
    s = calibrate(ensemble.window_scores(res, batch_size, cnn), *calibration)
    return FileScores(Path(res["path"]), res["offsets"], s, res["seconds"])


def iter_scores(files: list[Path], ensemble: Ensemble, overlap: float = 1.5, calibration: tuple[float, float] = (1, 0),
                batch_size: int = 64, prefetch: int = 1, engine: Any = None,
                part_seconds: float | None = PART_SECONDS) -> Iterator[FileScores | tuple[str, str]]:
    """:func:`score_segments` of every file: in this process (files in order; a recording longer than
    ``part_seconds`` in parts, joined), or spread over ``engine`` (a :class:`hawk.ray_engine.RayEngine`;
    files in the order they finish, in parts of its own ``part_seconds``)."""
    settings = segment_settings(ensemble.settings, overlap)
    if engine is None:
        yield from _across_files(iter_segments(files, settings, prefetch, bool(ensemble.models), part_seconds),
                                 ensemble, calibration, batch_size)
        return
    # workers run in their own folders: they get absolute paths, the caller gets its own back; not
    # resolved, so two inputs that are links to one file stay two recordings, as on the local engine
    given = {os.path.abspath(f): f for f in files}
    load = functools.partial(Ensemble.load, [p.resolve() for p in ensemble.paths], "auto", ensemble.runtime)
    call = functools.partial(score_segments, calibration=calibration, batch_size=batch_size)
    # the parts of each recording come from its header, read by the workers (many headers at once, on
    # the cluster's file system) rather than one after another by this process
    parts = functools.partial(recording_parts, settings=settings, part_seconds=engine.part_seconds)
    items = [(p, settings, bool(ensemble.models), first, count)
             for (p,), cuts in engine.map(parts, [(p,) for p in given], lambda item, why: [(0, None)], HEADERS_PER_TASK)
             for first, count in cuts]
    expected = collections.Counter(item[0] for item in items)
    arrived: dict[str, list[tuple[int, Any]]] = collections.defaultdict(list)
    for (path, _, _, first, _), out in engine.map_with_model(items, load, call, lambda item, why: (item[0], why),
                                                           prepare=file_segments):
        arrived[path].append((first, out))
        if len(arrived[path]) == expected[path]:
            merged = merge_parts([o for _, o in sorted(arrived.pop(path), key=lambda d: d[0])])
            yield dataclasses.replace(merged, path=given[path]) if isinstance(merged, FileScores) \
                else (str(given[path]), merged[1])


def _across_files(results: Iterator[dict[str, Any]], ensemble: Ensemble, calibration: tuple[float, float],
                  batch_size: int) -> Iterator[FileScores | tuple[str, str]]:
    """:func:`score_segments` of each result, in order, the CNNs' windows taken ``batch_size`` at a time
    across consecutive files: short recordings (a one-minute file holds 39 windows at 1.5 s overlap)
    would otherwise each make a batch smaller than ``batch_size``. A file is yielded (its parts joined)
    as soon as its last window is scored, so at most one batch of windows waits beyond the part in hand."""
    pending: list[dict[str, Any]] = []  # results not yet scored, in order
    parts: list[FileScores | tuple[str, str]] = []  # the scored parts of the recording in hand
    todo: list[np.ndarray] = []  # their CNN windows not yet scored, in order
    have = np.zeros((0, len(ensemble.classes)), np.float32)  # the CNN scores of their windows so far
    waiting = 0

    def ready(final: bool) -> Iterator[FileScores | tuple[str, str]]:
        nonlocal todo, waiting, have
        if waiting >= batch_size or (final and waiting):
            x = todo[0] if len(todo) == 1 else np.concatenate(todo)  # one copy, only when files share a batch
            n = len(x) if final else waiting - waiting % batch_size
            have = np.concatenate([have, ensemble.scores(x[:n], batch_size)])
            todo, waiting = [x[n:].copy()], waiting - n  # the rest: less than a batch
        used = 0
        while pending:
            n = len(pending[0]["offsets"]) if ensemble.models and "error" not in pending[0] else 0
            if used + n > len(have):
                break
            res = pending.pop(0)
            parts.append(score_segments(ensemble, res, calibration, batch_size, have[used : used + n] if n else None))
            used += n
            if len(parts) == res["parts"]:  # a recording's last part: the recording, joined
                yield merge_parts(parts)
                parts.clear()
        have = have[used:]

    for res in results:
        pending.append(res)
        if ensemble.models and "error" not in res and len(res["offsets"]):
            todo.append(res["specs"])
            waiting += len(res["offsets"])
        yield from ready(False)
    yield from ready(True)


def recording_parts(path: str, settings: SpecSettings, part_seconds: float | None) -> list[tuple[int, int | None]]:
    """(first segment, count) of each part a recording is scored in: one part up to ``part_seconds``
    long (or of unknown length), else parts of about ``part_seconds``, the last open-ended, so one
    long recording spreads over workers. Parts hold an even number of segments: at 1.5 s steps each
    part's decoding then starts on whole seconds, a sample of the file at any sample rate."""
    if not part_seconds:
        return [(0, None)]
    seconds = duration(path)
    per = 2 * max(1, int(part_seconds / settings.offset / 2))
    n = segment_count(seconds, settings)
    if not seconds or n <= per:
        return [(0, None)]
    firsts = list(range(0, n, per))
    return [(k, per) for k in firsts[:-1]] + [(firsts[-1], None)]


def merge_parts(parts: list[FileScores | tuple[str, str]]) -> FileScores | tuple[str, str]:
    """One recording's result from its parts in order: their segments joined; the first failure's
    reason, naming where it fell, when any part failed."""
    for k, p in enumerate(parts):
        if not isinstance(p, FileScores):
            return p if len(parts) == 1 else (p[0], f"{p[1]} (in part {k + 1} of {len(parts)})")
    if len(parts) == 1:
        return parts[0]
    return FileScores(parts[0].path, np.concatenate([p.offsets for p in parts]),
                      np.concatenate([p.scores for p in parts]),
                      max(p.seconds for p in parts if p.seconds is not None))


def score_files(files: list[Path], ensemble: Ensemble, overlap: float = 1.5, calibration: tuple[float, float] = (1, 0),
                batch_size: int = 64, prefetch: int = 1, progress: Any = None, engine: Any = None) -> ScoreRun:
    """Calibrated segment scores of every file; unreadable files are listed in ``skipped``."""
    start = time.perf_counter()
    run = ScoreRun()
    for out in iter_scores(files, ensemble, overlap, calibration, batch_size, prefetch, engine):
        if isinstance(out, FileScores):
            run.files.append(out)
        else:
            run.skipped.append(out)
            log.warning("skipped %s: %s", *out)
        if progress is not None:
            progress.update()
    run.seconds = time.perf_counter() - start
    return run
