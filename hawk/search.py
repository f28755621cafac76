"""Similarity search (the seed's search.py): the spectrograms nearest to a query, drawn for curation.

Brute force on unit vectors: one matrix-vector product gives the cosine distance (1 - dot) to every
stored embedding, then a partial sort keeps the closest ``num`` within ``dist``. Exact, and fast enough
for about a million embeddings on a laptop (see benchmarks/search_latency.py).
"""

from __future__ import annotations

import csv
import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hawk.audio import read_mono
from hawk.db import SpecDB
from hawk.embed.base import Embedder, EmbedderError, normalise
from hawk.embed.store import check_same_embedder, load_embeddings
from hawk.fsutil import atomic_open
from hawk.plot import SpecRenderer, image_name
from hawk.spectrogram import SpecSettings, SpectrogramMaker, decode

MATCH_FIELDS = ["query", "rank", "class", "file", "offset", "distance", "spectrogram_id", "image"]


@dataclass
class Index:
    """Embeddings of one or more classes stacked together: row i is spectrogram ``ids[i]`` of ``codes[i]``."""

    codes: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray
    embedder: dict

    def __len__(self) -> int:
        return len(self.ids)


def load_index(files: dict[str, Path], leave_out: dict[str, set[int]] | None = None) -> Index:
    """``files``: class code -> embeddings file. ``leave_out``: spectrogram ids per class to drop."""
    parts = {code: load_embeddings(path) for code, path in files.items()}
    ident = check_same_embedder({str(files[c]): e.embedder for c, e in parts.items()})
    codes, ids, vecs = [], [], []
    for code, e in parts.items():
        keep = np.ones(len(e.ids), bool)
        if leave_out and leave_out.get(code):
            keep = ~np.isin(e.ids, np.fromiter(leave_out[code], np.int64))
        codes.append(np.full(int(keep.sum()), code, dtype=object))
        ids.append(e.ids[keep])
        vecs.append(e.vectors[keep])
    dim = ident.get("dim") or 0
    return Index(np.concatenate(codes) if codes else np.zeros(0, object),
                 np.concatenate(ids) if ids else np.zeros(0, np.int64),
                 np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32), ident)


def nearest(vectors: np.ndarray, query: np.ndarray, num: int, dist: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``num`` unit ``vectors`` closest to the unit ``query`` within cosine distance ``dist``,
    closest first (ties by row), and their distances."""
    d = 1.0 - vectors @ query.astype(np.float32)
    cand = np.flatnonzero(d <= dist)
    if len(cand) > num:
        cand = cand[np.argpartition(d[cand], num - 1)[:num]]
        cut = d[cand].max()
        cand = np.union1d(cand, np.flatnonzero(d == cut))  # keep ties at the cut: ranking stays exact
    order = np.lexsort((cand, d[cand]))[:num]
    return cand[order], d[cand[order]]


@dataclass
class Query:
    """A segment to search with: ``path`` to audio and the segment's start ``offset`` in seconds."""

    path: Path
    offset: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.path.name}@{self.offset:g}"


@dataclass
class Match:
    query: str
    rank: int
    code: str
    filename: str
    offset: float
    distance: float
    spec_id: int | None
    image: str


def embed_query(q: Query, embedder: Embedder) -> np.ndarray:
    if not q.path.is_file():
        raise EmbedderError(f"{q.path}: query recording not found")
    return normalise(embedder.embed(embedder.inputs_at(q.path, [q.offset])))[0]


def search(queries: list[Query], index: Index, embedder: Embedder | None, dbs: dict[str, Path], rec_dirs: dict[str, Path],
           settings: SpecSettings, out_dir: Path, dist: float = 0.5, num: int = 200) -> list[Match]:
    """Run each query, draw its matches into ``out_dir`` (HawkEars names), write ``matches.csv`` and
    ``index.html``. A spectrogram found by several queries is drawn once, under its best rank."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.jpeg"):
        old.unlink()
    renderer = SpecRenderer(settings)
    found: list[tuple[Query, int, int, float]] = []  # query, rank, index row (-1: the query), distance
    for q in queries:
        assert embedder is not None, "queries need an embedder"
        rows, dists = nearest(index.vectors, embed_query(q, embedder), num, dist)
        found.append((q, 0, -1, 0.0))
        found += [(q, r + 1, int(row), float(d)) for r, (row, d) in enumerate(zip(rows, dists))]
    by_code: dict[str, list[int]] = {}
    for _, _, row, _ in found:
        if row >= 0:
            by_code.setdefault(str(index.codes[row]), []).append(int(index.ids[row]))
    specs = {}
    for code, ids in by_code.items():
        with SpecDB(dbs[code]) as db:
            specs.update({(code, k): v for k, v in db.spectrograms_by_id(ids).items()})
    matches: list[Match] = []
    drawn: set[tuple[str, float]] = set()
    for q, rank, row, d in found:
        if row < 0:
            code, filename, offset, spec_id = "", q.path.name, q.offset, None
            spec = SpectrogramMaker(settings).at(read_mono(q.path, settings.sample_rate), [q.offset])[0]
        else:
            code, spec_id = str(index.codes[row]), int(index.ids[row])
            r = specs[(code, spec_id)]
            filename, offset = r.filename, r.offset
            if (Path(filename).stem, round(offset, 2)) == (q.path.stem, round(q.offset, 2)):
                continue  # the query itself, already rank 0
            spec = decode(r.value, settings.spec_height, settings.spec_width)
        name = image_name(filename, offset, rank, d)
        if (filename, offset) not in drawn:
            renderer.save(spec, out_dir / name)
            drawn.add((filename, offset))
        matches.append(Match(q.label, rank, code, filename, offset, d, spec_id, name))
    _write_matches(out_dir / "matches.csv", matches)
    _write_html(out_dir / "index.html", matches, queries, rec_dirs, settings.segment_len, out_dir)
    return matches


def _write_matches(path: Path, matches: list[Match]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(MATCH_FIELDS)
        for m in matches:
            w.writerow([m.query, m.rank, m.code, m.filename, repr(m.offset), f"{m.distance:.4f}",
                        "" if m.spec_id is None else m.spec_id, m.image])


def read_matches(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_html(path: Path, matches: list[Match], queries: list[Query], rec_dirs: dict[str, Path], seconds: float,
                out_dir: Path) -> None:
    """A contact sheet: every image with a player for its segment (a media fragment of the recording)."""
    query_paths = {q.label: q.path for q in queries}
    cards = []
    for m in matches:
        audio = query_paths[m.query] if m.rank == 0 else rec_dirs[m.code] / m.filename
        src = html.escape(os.path.relpath(audio, out_dir).replace(os.sep, "/"))
        t = f"#t={m.offset:.3f},{m.offset + seconds:.3f}"
        cards.append(
            f'<figure><img src="{html.escape(m.image)}" loading="lazy" alt="{html.escape(m.image)}">'
            f'<figcaption>{m.rank}. {html.escape(m.code or "query")} {html.escape(m.filename)} @ {m.offset:.2f} s'
            f' &middot; d={m.distance:.3f}</figcaption>'
            f'<audio controls preload="none" src="{src}{t}"></audio></figure>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>hawk search: {len(matches)} matches</title>
<style>body{{font:13px sans-serif;margin:1em}}figure{{display:inline-block;margin:4px;width:460px}}
img{{width:100%}}audio{{width:100%;height:28px}}figcaption{{overflow-wrap:anywhere}}</style></head><body>
<h1>{len(matches)} matches for {html.escape(", ".join(query_paths))}</h1>
<p>Rank 0 is the query. Play a segment to hear it; delete the images you do not want from your
curation folder (not from here: this folder is rewritten by the search stage).</p>
{''.join(cards)}</body></html>"""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(page)


def ids_in_training(class_db: Path, train_db: Path, code: str) -> set[int]:
    """Spectrogram ids of ``class_db`` already in the training database (for ``omit``)."""
    if not train_db.exists():
        return set()
    with SpecDB(train_db) as t:
        have = set(t.conn.execute(
            "SELECT r.FileName, s.Offset FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID "
            "JOIN Subcategory c ON c.ID = r.SubcategoryID WHERE c.Code = ?", (code,)))
    with SpecDB(class_db) as db:
        return {r.id for r in db.spectrograms() if (r.filename, r.offset) in have}
