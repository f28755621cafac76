"""The training set the seed calls the "pickle": spectrograms, labels and where each came from.

A folder, not a Python pickle, so loading it never runs code:

- ``specs.npy``: uint8 (n, height, width), a plain NumPy array file. Training reads rows straight from
  the file (``np.load(mmap_mode="r")`` maps it too), so a set larger than RAM trains in flat memory.
- ``rows.csv``: per spectrogram its class index and code, recording id and file, offset, source and
  split group (the recording, or its duplicate group from dedup, so copies never straddle a split).
- ``meta.json``: classes (names and codes, in classes.txt order), spectrogram settings, counts and the
  hashes of the data (training database and specs.npy).
- ``vectors.npy`` (when an embedding head is trained): float32 (n, dim), each row's embedding from the
  embed stage (zeros where the embedder skipped its recording), with the embedder in ``meta.json``.
- ``negatives.npz`` (idem): the windows a person said no to, as vectors with their class
  (:mod:`hawk.negatives`); not rows of the set: only the head trains on them.

The rows come from the training database, then the 3-s clips a person confirmed in their own
recordings (data/field/<CODE>/, the field queue's yes; source ``field``): a verdict, so no curation
step stands between it and training, and a round of them reruns pickle and what follows only.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hawk.audio import AudioError, is_audio_file, read_mono
from hawk.db import SpecDB
from hawk.doubt import clip_window, field_verdicts
from hawk.errors import HawkError
from hawk.fsutil import atomic_open, sha256_file
from hawk.negatives import FIELD, Negatives
from hawk.progress import progress_bar
from hawk.spectrogram import SpecSettings, SpectrogramMaker, decode_uint8, encode, normalise

NEGATIVES = "negatives.npz"  # hawk.negatives: windows a person said no to, for the head
ROW_FIELDS = ["index", "class_index", "code", "recording_id", "file", "offset", "source", "group"]


class SpecSetError(HawkError, ValueError):
    pass


@dataclass
class Clip:
    """A row from outside the training database: a clip a person confirmed in their own recordings."""

    code: str
    path: Path
    spec: np.ndarray  # uint8 (height, width): its first segment, made as extract makes them
    vector: np.ndarray | None = None  # its embedding, when an embedding head is trained

    @property
    def file(self) -> str:
        return f"field-{self.path.name}"

    @property
    def group(self) -> str:
        """Its recording's split group: windows of one field recording never straddle the split."""
        stem, _ = clip_window(self.path) or (self.path.stem, 0.0)
        return f"rec:field-{stem}"


def field_clips(folder: Path, codes: list[str], spec: dict[str, Any]) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Every clip of ``codes`` a person confirmed (``folder``/<CODE>/, top level: their no's are in
    rejected/, and a no there outweighs a yes: :func:`hawk.doubt.field_verdicts`) with its spectrogram under ``spec`` (the training database's settings), and (clip, why)
    for each that cannot be used."""
    settings = SpecSettings.from_mapping(spec)
    clips, bad = [], []
    for code in codes:
        _, no = field_verdicts(folder / code)  # a window with a yes and a no counts as no, as everywhere
        for p in sorted((folder / code).iterdir()) if (folder / code).is_dir() else []:
            window = clip_window(p)
            if not is_audio_file(p) or (window and (window[0], round(window[1], 2)) in no):
                continue
            try:
                first = next(iter(SpectrogramMaker(settings).segments([read_mono(p, settings.sample_rate)], raw=True)),
                             None)
                if first is None or not first[1].max() > 0:
                    raise ValueError("silent or shorter than a segment")
                mag = normalise(first[1])
            except (AudioError, OSError, ValueError) as e:
                bad.append((f"{code}/{p.name}", getattr(e, "reason", str(e))))
                continue
            clips.append(Clip(code, p, decode_uint8(encode(mag), settings.spec_height, settings.spec_width)))
    return clips, bad


def build_specset(train_db: Path, classes: list[tuple[str, str]], out_dir: Path, max_per_class: int | None = None,
                  seed: int = 0, groups: dict[tuple[str, str], int] | None = None,
                  show_progress: bool = True,
                  vectors: tuple[dict[str, dict[tuple[str, float], np.ndarray]], dict[str, Any]] | None = None,
                  negatives: Negatives | None = None, clips: list[Clip] | None = None) -> dict[str, Any]:
    """Write the training set for ``classes`` ((name, code) in output order) from ``train_db``, then
    ``clips`` (:func:`field_clips`; with ``vectors``, each its own).

    ``vectors``: per class code its embeddings by (file, offset) window, and the embedder's description;
    each row's vector is then stored beside its spectrogram, for the embedding head. ``negatives``: a
    person's "no" verdicts as vectors (hawk.negatives), stored as negatives.npz for the head.

    At most ``max_per_class`` spectrograms per class from the database (a seeded random sample; every
    clip is kept: a person chose it). A listed class with no
    spectrograms is an error naming it. Written to a temporary folder and renamed into place.
    """
    groups, clips = groups or {}, clips or []
    with SpecDB(train_db) as db:
        spec = db.get_meta("spec_settings")
        if not spec:
            raise SpecSetError(f"{train_db}: no spectrogram settings recorded (not made by hawk?)")
        by_code: dict[str, list[tuple]] = {}
        for row in db.conn.execute(
                "SELECT c.Code, s.ID, r.ID, r.FileName, s.Offset, src.Name FROM Spectrogram s "
                "JOIN Recording r ON r.ID = s.RecordingID JOIN Subcategory c ON c.ID = r.SubcategoryID "
                "JOIN Source src ON src.ID = r.SourceID WHERE s.Ignore IS NULL OR s.Ignore != 'Y' "
                "ORDER BY r.FileName, s.Offset"):
            by_code.setdefault(row[0], []).append(row[1:])
        empty = [f"{name} ({code})" for name, code in classes
                 if not by_code.get(code) and not any(c.code == code for c in clips)]
        if empty:
            raise SpecSetError(f"{train_db}: no spectrograms for class(es) {', '.join(empty)}; curate some or "
                               "remove them from classes.txt")
        rng = np.random.default_rng(seed)
        chosen: list[tuple[int, str, tuple]] = []
        for k, (_, code) in enumerate(classes):
            rows = by_code.get(code, [])
            if max_per_class and len(rows) > max_per_class:
                rows = [rows[i] for i in sorted(rng.choice(len(rows), max_per_class, replace=False))]
            chosen += [(k, code, r) for r in rows]
        h, w = spec["spec_height"], spec["spec_width"]
        tmp = out_dir.with_name(f".{out_dir.name}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        n = len(chosen) + len(clips)
        specs = np.lib.format.open_memmap(tmp / "specs.npy", mode="w+", dtype=np.uint8, shape=(n, h, w))
        missing = _write_vectors(tmp / "vectors.npy", chosen, vectors[0], clips) if vectors else 0
        index = {code: k for k, (_, code) in enumerate(classes)}
        with open(tmp / "rows.csv", "w", newline="", encoding="utf-8") as f, \
                progress_bar(n, "pickle", show_progress) as bar:
            out = csv.writer(f)
            out.writerow(ROW_FIELDS)
            ids = [r[0] for _, _, r in chosen]
            for start in range(0, len(chosen), 2000):
                part = ids[start : start + 2000]
                marks = ",".join("?" * len(part))
                blobs = dict(db.conn.execute(f"SELECT ID, Value FROM Spectrogram WHERE ID IN ({marks})", part))
                for i in range(start, start + len(part)):
                    k, code, (spec_id, rec_id, fname, offset, source) = chosen[i]
                    specs[i] = decode_uint8(blobs[spec_id], h, w)
                    g = groups.get((code, fname))
                    out.writerow([i, k, code, rec_id, fname, repr(offset), source,
                                  f"dup{g}" if g is not None else f"rec:{fname}"])
                    bar.update()
            for i, c in enumerate(clips, len(chosen)):
                specs[i] = c.spec
                out.writerow([i, index[c.code], c.code, "", c.file, repr(0.0), FIELD, c.group])
                bar.update()
        specs.flush()
        del specs
    meta = {
        "format": "hawk-specset/1",
        "classes": [{"name": n, "code": c} for n, c in classes],
        "spec_settings": spec,
        "count": n,
        "per_class": {c: sum(1 for _, cc, _ in chosen if cc == c) + sum(1 for x in clips if x.code == c)
                      for _, c in classes},
        "field_clips": {c: k for _, c in classes if (k := sum(1 for x in clips if x.code == c))},
        "data": {"train_db_sha256": sha256_file(train_db), "specs_sha256": sha256_file(tmp / "specs.npy")},
    }
    if vectors:
        meta["embedder"] = vectors[1]
        meta["vectors_missing"] = missing
        meta["data"]["vectors_sha256"] = sha256_file(tmp / "vectors.npy")
    if negatives is not None:
        negatives.save(tmp / NEGATIVES)
        meta["negatives"] = negatives.counts()
        meta["data"]["negatives_sha256"] = sha256_file(tmp / NEGATIVES)
    with atomic_open(tmp / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return meta


def _write_vectors(path: Path, chosen: list[tuple[int, str, tuple]],
                   by_code: dict[str, dict[tuple[str, float], np.ndarray]], clips: list[Clip]) -> int:
    """Each chosen row's embedding, then each clip's (zeros when there is none); returns how many had none."""
    dim = next((len(v) for m in by_code.values() for v in m.values()),
               next((len(c.vector) for c in clips if c.vector is not None), 0))
    out = np.zeros((len(chosen) + len(clips), dim), np.float32)
    missing = 0
    for i, (_, code, (_, _, fname, offset, _)) in enumerate(chosen):
        v = by_code.get(code, {}).get((fname, float(offset)))
        if v is None:
            missing += 1
        else:
            out[i] = v
    for i, c in enumerate(clips, len(chosen)):
        if c.vector is None:
            missing += 1
        else:
            out[i] = c.vector
    with atomic_open(path, "wb") as f:
        np.save(f, out)
    return missing


@dataclass
class SpecSet:
    """An opened training set. ``read(i)`` returns spectrogram i as uint8 (height, width), read from
    the file with ``pread`` so memory stays flat however large the set."""

    root: Path
    meta: dict[str, Any]
    rows: list[dict[str, str]]
    labels: np.ndarray  # class index per row
    groups: list[str]

    @classmethod
    def open(cls, root: str | Path) -> "SpecSet":
        root = Path(root)
        try:
            meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
            with open(root / "rows.csv", newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except (OSError, ValueError) as e:
            raise SpecSetError(f"{root}: not a hawk training set ({e}); run the pickle stage") from e
        if meta.get("format") != "hawk-specset/1":
            raise SpecSetError(f"{root}: not a hawk training set (format {meta.get('format')!r})")
        labels = np.array([int(r["class_index"]) for r in rows], np.int64)
        return cls(root, meta, rows, labels, [r["group"] for r in rows])

    def __post_init__(self) -> None:
        with open(self.root / "specs.npy", "rb") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            self._data_offset = f.tell()
        self.shape = shape[1:]
        self._size = int(np.prod(self.shape))
        self._fd: int | None = None
        if dtype != np.uint8:
            raise SpecSetError(f"{self.root / 'specs.npy'}: expected uint8 spectrograms, found {dtype}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def class_codes(self) -> list[str]:
        return [c["code"] for c in self.meta["classes"]]

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.meta["classes"]]

    def vectors(self) -> np.ndarray:
        """Each row's embedding ((n, dim) float32, zeros where none was made), for the embedding head."""
        path = self.root / "vectors.npy"
        if not path.exists():
            raise SpecSetError(f"{self.root}: no embeddings in the training set; the embedding head needs the "
                               "pickle stage run with train.model_name=embed_head or train.head.enabled=true")
        return np.load(path, allow_pickle=False)

    def negatives(self) -> Negatives | None:
        """A person's "no" verdicts, for the embedding head (None when the set was made without)."""
        path = self.root / NEGATIVES
        return Negatives.load(path) if path.exists() else None

    def read(self, i: int) -> np.ndarray:
        if self._fd is None:  # opened lazily so each data-loader worker gets its own descriptor
            self._fd = os.open(self.root / "specs.npy", os.O_RDONLY)
        buf = os.pread(self._fd, self._size, self._data_offset + i * self._size)
        return np.frombuffer(buf, np.uint8).reshape(self.shape)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"] = None
        return state
