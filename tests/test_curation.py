"""Embeddings, search and selection on a real class database: BirdNET and checkpoint embedders, exact
brute-force ranking, HawkEars image names, deletions and dedup honoured, re-extraction."""

import sqlite3
import sys

import numpy as np
import pytest

from hawk.ckpt import save_checkpoint
from hawk.curation import build_db, images_in, merge_dbs, parse_image_name, resolve, seed_curation
from hawk.db import SpecDB
from hawk.download.demo import make_demo_recordings
from hawk.embed import EmbedderError, create_embedder
from hawk.embed.run import embed_class
from hawk.embed.store import load_embeddings
from hawk.extract import extract_class
from hawk.models import create_model
from hawk.plot import image_name, plot_db
from hawk.search import Query, load_index, nearest, read_matches, search
from hawk.spectrogram import SpecSettings
from tests import procs
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("curation")
    rec = root / "rec" / "RIWH"
    rec.mkdir(parents=True)
    make_demo_recordings(rec, "whistle", 3, seed=5)
    extract_class(rec, root / "RIWH.db", root / "RIWH.report.csv", "Rising Whistler", "RIWH", SpecSettings(),
                  workers=1, show_progress=False)
    birdnet = create_embedder("birdnet", threads=1)
    res = embed_class(root / "RIWH.db", rec, birdnet, root / "RIWH.npz", root / "embed.csv", "RIWH",
                      show_progress=False)
    assert res.embedded > 10 and not res.skipped
    return root, rec, birdnet


def test_nearest_is_the_exact_brute_force_ranking():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((5000, 32)).astype(np.float32)
    v[100:110] = v[5]  # ties
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for q in (v[5], v[42], -v[7]):
        rows, dists = nearest(v, q, 50, 0.9)
        d = 1 - v @ q
        ok = np.flatnonzero(d <= 0.9)
        expected = ok[np.lexsort((ok, d[ok]))][:50]
        assert rows.tolist() == expected.tolist()
        assert np.allclose(dists, d[expected])


@pytest.mark.parametrize("stem", ["XC1234", "XC1234-song_a.b", "2024-05-01-0630", "12"])
@pytest.mark.parametrize("offset", [0.0, 1.5, 2.0, 12.25, 100.75])
def test_image_names_round_trip(stem, offset):
    for name in (image_name(f"{stem}.mp3", offset), image_name(f"{stem}.mp3", offset, rank=7, distance=0.1234)):
        assert parse_image_name(name) == (stem, offset)


def test_names_resolve_to_exact_offsets_without_collisions():
    stored = {"x.wav": [1.25, 1.5, 1.75, 2.0], "y.flac": [0.0]}
    picks = resolve([("a", "x", 1.5), ("b", "x", 2.0), ("c", "x", 1.25), ("d", "y", 0.0), ("e", "x", 1.6),
                     ("f", "zzz", 0.0)], stored)
    assert picks.offsets == {"x.wav": [1.25, 1.5, 2.0], "y.flac": [0.0]}
    assert [w for w, _ in picks.skipped] == ["e", "f"]


def test_search_writes_hawkears_images_and_contact_sheet(project, tmp_path):
    root, rec, birdnet = project
    index = load_index({"RIWH": root / "RIWH.npz"})
    query = Query(rec / "DEMO05001.flac", 1.5)
    matches = search([query], index, birdnet, {"RIWH": root / "RIWH.db"}, {"RIWH": rec}, SpecSettings(), tmp_path,
                     dist=2.0, num=10)
    assert matches[0].rank == 0 and matches[0].image == "0~DEMO05001-1.50~0.000.jpeg"
    assert [m.rank for m in matches] == sorted(m.rank for m in matches)
    assert all((tmp_path / m.image).exists() for m in matches)
    assert not any(m.rank > 0 and (m.filename, m.offset) == ("DEMO05001.flac", 1.5) for m in matches)
    # the ranking is the brute-force one over the stored vectors
    emb = load_embeddings(root / "RIWH.npz")
    from hawk.search import embed_query

    d = 1 - emb.vectors @ embed_query(query, birdnet)
    ranked = [int(emb.ids[i]) for i in np.argsort(d, kind="stable")]
    assert [m.spec_id for m in matches[1:]] == [i for i in ranked if i != ranked[0]][: len(matches) - 1]
    page = (tmp_path / "index.html").read_text()
    assert page.count("<audio") == len(matches) and "DEMO05001.flac#t=1.500,4.500" in page
    assert len(read_matches(tmp_path / "matches.csv")) == len(matches)


def test_checkpoint_embedder_and_no_mixing(project, tmp_path):
    root, rec, _ = project
    ckpt = save_checkpoint(tmp_path / "m.ckpt", "custom_hgnet_1", create_model("custom_hgnet_1", 3),
                           [("A", "A"), ("B", "B"), ("C", "C")], SpecSettings().to_dict())
    emb = create_embedder("checkpoint", path=str(ckpt))
    res = embed_class(root / "RIWH.db", rec, emb, tmp_path / "RIWH.npz", tmp_path / "r.csv", "RIWH",
                      show_progress=False)
    again = embed_class(root / "RIWH.db", rec, emb, tmp_path / "RIWH.npz", tmp_path / "r.csv", "RIWH",
                        show_progress=False)
    assert again.embedded == 0 and again.reused == res.embedded  # incremental
    stored = load_embeddings(tmp_path / "RIWH.npz")
    assert stored.meta["name"] == "checkpoint" and stored.vectors.shape[1] == emb.dim
    with pytest.raises(EmbedderError, match="cannot be mixed"):
        load_index({"RIWH": root / "RIWH.npz", "OTHER": tmp_path / "RIWH.npz"})


KILLED_EMBED = """
import os, sys
from pathlib import Path
from hawk.embed import create_embedder
from hawk.embed.run import embed_class

root, rec, ckpt, out = map(Path, sys.argv[1:])
emb = create_embedder("checkpoint", path=str(ckpt))
real, calls = emb.embed, []

def embed(x):  # the machine dies (kill -9) while the fourth batch is embedded
    calls.append(1)
    if len(calls) == 4:
        os.kill(os.getpid(), 9)
    return real(x)

emb.embed = embed
embed_class(root / "RIWH.db", rec, emb, out, out.with_suffix(".csv"), "RIWH", batch_size=2, show_progress=False,
            save_every=0)
"""


def test_a_killed_embed_resumes_from_its_last_save(project, tmp_path):
    root, rec, _ = project
    ckpt = save_checkpoint(tmp_path / "m.ckpt", "custom_hgnet_1", create_model("custom_hgnet_1", 3),
                           [("A", "A"), ("B", "B"), ("C", "C")], SpecSettings().to_dict())
    whole = embed_class(root / "RIWH.db", rec, create_embedder("checkpoint", path=str(ckpt)), tmp_path / "whole.npz",
                        tmp_path / "whole.csv", "RIWH", show_progress=False)
    out = tmp_path / "killed.npz"
    done = procs.run([sys.executable, "-c", KILLED_EMBED, str(root), str(rec), str(ckpt), str(out)], cwd=ROOT)
    assert done.returncode == -9, done.stdout + done.stderr
    assert len(load_embeddings(out).ids) == 6  # three batches of two were saved before the kill
    again = embed_class(root / "RIWH.db", rec, create_embedder("checkpoint", path=str(ckpt)), out,
                        tmp_path / "again.csv", "RIWH", show_progress=False)
    assert again.reused == 6 and again.embedded == whole.embedded - 6
    a, b = load_embeddings(tmp_path / "whole.npz"), load_embeddings(out)
    assert np.array_equal(a.ids, b.ids) and np.allclose(a.vectors, b.vectors, atol=1e-5)


def test_select_honours_deletions_and_dedup_and_reextracts_exactly(project, tmp_path):
    root, rec, _ = project
    plots = plot_db(root / "RIWH.db", tmp_path / "plots", SpecSettings())
    folder = tmp_path / "curation"
    assert seed_curation(tmp_path / "plots", folder) == len(plots)
    deleted = sorted(folder.glob("*.jpeg"))[:2]
    for p in deleted:
        p.unlink()
    assert seed_curation(tmp_path / "plots", folder) == 0  # deleted images are never copied back
    with SpecDB(root / "RIWH.db") as db:
        stored = db.offsets()
        blobs = {(r.filename, r.offset): r.value for r in db.spectrograms()}
    excluded = "DEMO05002.mp3"
    picks = resolve(images_in(folder), stored, {excluded})
    res = build_db(tmp_path / "sel.db", picks.offsets, rec, root / "RIWH.db", SpecSettings(), "Rising Whistler",
                   "RIWH", show_progress=False)
    with SpecDB(tmp_path / "sel.db") as db:
        got = {(r.filename, r.offset): r.value for r in db.spectrograms()}
    gone = {(f"{parse_image_name(p.name)[0]}.wav", parse_image_name(p.name)[1]) for p in deleted}
    expected = {k for k in blobs if k[0] != excluded and k not in gone}
    assert set(got) == expected and res.spectrograms == len(expected)
    assert all(got[k] == blobs[k] for k in got)  # copied: the class database has these settings
    build_db(tmp_path / "audio.db", picks.offsets, rec, None, SpecSettings(), "Rising Whistler", "RIWH",
             show_progress=False)
    with SpecDB(tmp_path / "audio.db") as db:
        again = {(r.filename, r.offset): r.value for r in db.spectrograms()}
    assert again == got  # re-extracted from the audio, identical to the stored ones
    assert sum(r == "recording left out as a duplicate (dedup)" for _, r in picks.skipped) > 0
    # reextract with other settings: same recordings and offsets, new shape
    small = SpecSettings(spec_height=128, max_freq=11000.0)
    build_db(tmp_path / "small.db", picks.offsets, rec, tmp_path / "sel.db", small, "Rising Whistler", "RIWH",
             show_progress=False)
    assert merge_dbs([tmp_path / "small.db"], tmp_path / "train.db") == len(expected)
    with sqlite3.connect(tmp_path / "train.db") as db:
        (blob,) = db.execute("SELECT Value FROM Spectrogram LIMIT 1").fetchone()
        assert db.execute("SELECT Code FROM Subcategory").fetchall() == [("RIWH",)]
    import zlib

    assert len(zlib.decompress(blob)) == 128 * 384
