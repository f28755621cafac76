"""engine=ray on a real two-node Ray cluster on this machine (`ray start --head`, then a second node with
`ray start --address`, one CPU each): infer, extract and embed give what the local engine gives, infer
resumes after its driver is killed, and a Ray worker killed with kill -9 mid-run loses nothing."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from hawk.db import SpecDB
from hawk.download.demo import synth_recording, write_audio
from hawk.embed import create_embedder
from hawk.embed.store import load_embeddings
from hawk.embed.run import embed_class
from hawk.extract import extract_class
from hawk.infer import Ensemble, FileScores, iter_scores, score_files
from hawk.ray_engine import RayEngine
from hawk.resume import FOLDER
from hawk.spectrogram import SpecSettings
from tests.conftest import ROOT
from tests.test_infer_eval import ckpt

RAY = str(Path(sys.executable).parent / "ray")
FILES = 16


@pytest.fixture(scope="module")
def cluster():
    """The head node and a second node, each with its own CPU; their address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")  # Ray's socket paths must stay short
    # token authentication, as a real cluster has it: every node and driver of the test holds the token
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    env = dict(os.environ)
    common = ["--num-cpus=1", "--object-store-memory=150000000", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                        *common], check=True, env=env, capture_output=True)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, env=env, capture_output=True)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Recordings in every format, in nested folders, one unreadable; and a two-checkpoint ensemble."""
    root = tmp_path_factory.mktemp("archive")
    rec = root / "recordings"
    for i in range(FILES):
        ext = [".wav", ".flac", ".mp3", ".ogg", ".m4a"][i % 5]
        write_audio(rec / f"site{i % 3}" / f"r{i:02d}{ext}", synth_recording(["whistle", "chirp"][i % 2], i, 20.0,
                                                                             32000), 32000)
    (rec / "site0" / "broken.wav").write_text("not audio")
    ckpt(root / "ckpt" / "a.ckpt", seed=1)
    ckpt(root / "ckpt" / "b.ckpt", seed=2)
    return root


def infer(archive: Path, out: Path, *extra: str, wait: bool = True):
    args = [sys.executable, "-m", "stages.infer", f"paths.ckpt={archive / 'ckpt'}", f"infer.input={archive / 'recordings'}",
            f"paths.labels={out}", "infer.min_score=0.5", "infer.progress=false", *extra]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy())
    if not wait:
        return proc
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, text
    return text


def outputs(out: Path) -> dict[str, bytes]:
    """Every file infer wrote but its summary (which names the engine and the times)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "summary.txt"}


@pytest.fixture(scope="module")
def local_labels(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    infer(archive, out)
    files = outputs(out)
    assert sum(k.endswith("_hawk.txt") for k in files) == FILES and b"broken.wav" in files["skipped.csv"]
    assert len(files["labels.csv"].splitlines()) > FILES  # labels to compare, not empty files
    return files


def records(out: Path) -> int:
    return len(list((out / FOLDER).rglob("*.json"))) if (out / FOLDER).exists() else 0


def wait_for_records(proc, out: Path, at_least: int) -> int:
    deadline = time.time() + 120
    while (n := records(out)) < at_least:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "no progress"
        time.sleep(0.02)
    return n


def test_infer_on_a_two_node_cluster_gives_the_local_labels(cluster, archive, local_labels, tmp_path):
    text = infer(archive, tmp_path, "engine=ray", f"engine.address={cluster}")
    assert "engine ray" in text and f"{FILES} scored now" in text
    assert outputs(tmp_path) == local_labels


def test_cluster_scores_equal_the_local_engines(cluster, archive):
    files = sorted(p for p in (archive / "recordings").rglob("*") if p.is_file())
    ens = Ensemble.load(archive / "ckpt", "cpu")
    local = {f.path: f for f in score_files(files, ens, 1.5).files}
    with RayEngine(address=cluster) as eng:
        remote = list(iter_scores(files, ens, 1.5, engine=eng))
    scored = [r for r in remote if isinstance(r, FileScores)]
    assert len(scored) == len(local) == FILES and len(remote) == FILES + 1
    for r in scored:
        assert np.array_equal(r.offsets, local[r.path].offsets)
        assert np.allclose(r.scores, local[r.path].scores, atol=1e-5)


def test_infer_survives_a_killed_worker_and_resumes_after_an_interruption(cluster, archive, local_labels, tmp_path):
    # kill -9 the Ray worker holding the model while recordings are still to do: Ray restarts it and retries
    out = tmp_path / "killed_worker"
    proc = infer(archive, out, "engine=ray", f"engine.address={cluster}", "engine.concurrency=1", wait=False)
    done_at_kill = wait_for_records(proc, out, 2)
    actor = subprocess.run(["pgrep", "-f", "ray::MapWorker"], capture_output=True, text=True).stdout.split()
    assert actor, "no model actor to kill"
    os.kill(int(actor[0]), signal.SIGKILL)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, text
    assert done_at_kill < FILES, "the run ended before the kill"
    assert outputs(out) == local_labels

    # kill -9 the driver (the stage) part-way: the rerun scores only what is left
    out = tmp_path / "interrupted"
    proc = infer(archive, out, "engine=ray", f"engine.address={cluster}", wait=False)
    wait_for_records(proc, out, 3)
    proc.kill()
    proc.wait()
    kept = records(out)
    assert 3 <= kept < FILES
    text = infer(archive, out, "engine=ray", f"engine.address={cluster}")
    assert f"{FILES - kept} scored now, {kept} resumed" in text
    assert outputs(out) == local_labels
    text = infer(archive, out, "infer.min_score=0.6")  # other settings: nothing is reused
    assert f"{FILES} scored now, 0 resumed" in text


def test_extract_and_embed_on_the_cluster_equal_the_local_engines(cluster, archive, tmp_path):
    rec = archive / "recordings" / "site1"
    settings = SpecSettings()
    extract_class(rec, tmp_path / "local.db", tmp_path / "local.csv", "Rising Whistler", "RIWH", settings, workers=1,
                  show_progress=False)
    with RayEngine(address=cluster) as eng:
        res = extract_class(rec, tmp_path / "ray.db", tmp_path / "ray.csv", "Rising Whistler", "RIWH", settings,
                            show_progress=False, engine=eng)
        assert res.added_recordings == len(list(rec.iterdir())) and res.added_spectrograms > 0

        def content(db_path: Path) -> dict:
            with SpecDB(db_path) as db:
                return {(r.filename, r.offset): r.value for r in db.spectrograms()}

        assert content(tmp_path / "ray.db") == content(tmp_path / "local.db")
        load = lambda: create_embedder("birdnet", threads=1)  # noqa: E731
        embed_class(tmp_path / "local.db", rec, load(), tmp_path / "local.npz", tmp_path / "le.csv", "RIWH",
                    show_progress=False)
        embed_class(tmp_path / "ray.db", rec, load(), tmp_path / "ray.npz", tmp_path / "re.csv", "RIWH",
                    show_progress=False, engine=eng, load_embedder=load)
    # the cluster's recordings arrive in any order, so ids differ: compare by recording and offset
    vectors = {}
    for name in ("local", "ray"):
        e = load_embeddings(tmp_path / f"{name}.npz")
        with SpecDB(tmp_path / f"{name}.db") as db:
            where = {r.id: (r.filename, r.offset) for r in db.spectrograms()}
        vectors[name] = {where[i]: v for i, v in zip(e.ids.tolist(), e.vectors)}
    assert len(vectors["local"]) == res.added_spectrograms and vectors["local"].keys() == vectors["ray"].keys()
    assert all(np.allclose(v, vectors["ray"][k], atol=1e-5) for k, v in vectors["local"].items())
