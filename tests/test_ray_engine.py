"""engine=ray on a real two-node Ray cluster on this machine (`ray start --head`, then a second node with
`ray start --address`, one CPU each): infer, extract and embed give what the local engine gives, infer
resumes after its driver is killed, and a Ray worker killed with kill -9 mid-run loses nothing."""

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hawk.ckpt import save_checkpoint
from hawk.db import SpecDB
from hawk.download.demo import synth_recording, write_audio
from hawk.embed import create_embedder
from hawk.embed.store import load_embeddings
from hawk.embed.run import embed_class
from hawk.extract import extract_class
from hawk.infer import Ensemble, FileScores, iter_scores, recording_parts, score_files, segment_settings
from hawk.models import create_model
from hawk.errors import HawkError
from hawk.ray_engine import RayEngine, connect_failure
from hawk.resume import FOLDER, LabelRecords, run_key
from hawk.spectrogram import SpecSettings
from tests import procs
from tests.conftest import ROOT
from tests.test_infer_eval import CLASSES

RAY = str(Path(sys.executable).parent / "ray")
# Slow on a busy machine (two one-CPU nodes share its cores): the timeout is for hangs only.
pytestmark = pytest.mark.timeout(3600)
FILES = 12


def _start_node(args: str, stack: contextlib.ExitStack) -> set[int]:
    """``ray start ARGS --block`` in a session of its own, until its runtime is up; its process
    group (the node's GCS, raylet and workers alike) is killed when ``stack`` closes."""
    proc = stack.enter_context(procs.popen(f"exec {RAY} start --block {args}", shell=True, env=dict(os.environ),
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    seen = []
    for line in proc.stdout:  # no deadline: pytest-timeout bounds a node that never comes up
        seen.append(line)
        if "Ray runtime started" in line:
            break
    else:
        raise AssertionError("ray start ended:\n" + "".join(seen))
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return {proc.pid}


@pytest.fixture(scope="module")
def cluster(request):
    """The head node and a second node, each with its own CPU; their address. The nodes start while the
    local engine labels the archive (``local_labels``); afterwards exactly their process groups are
    killed (never `ray stop`, which would stop every Ray of this user on the machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")  # Ray's socket paths must stay short
    # token authentication, as a real cluster has it: every node and driver of the test holds the token
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    common = "--num-cpus=1 --object-store-memory=150000000 --disable-usage-stats"
    try:
        with contextlib.ExitStack() as stack:
            leaders = _start_node(f"--head --port={port} --include-dashboard=false --temp-dir={temp} {common}", stack)
            leaders |= _start_node(f"--address=127.0.0.1:{port} {common}", stack)
            CLUSTER_LEADERS.update(leaders)
            request.getfixturevalue("local_labels")
            yield f"127.0.0.1:{port}"
    finally:
        CLUSTER_LEADERS.clear()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(temp, ignore_errors=True)


CLUSTER_LEADERS: set[int] = set()  # the `ray start` processes of this module's cluster


def our_actors() -> list[int]:
    """The model actors of this module's own cluster (never another Ray on the machine)."""
    out = []
    for leader in CLUSTER_LEADERS:
        sid = os.getsid(leader)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == sid and "ray::MapWorker" in (entry / "cmdline").read_text():
                        out.append(int(entry.name))
                except (OSError, ProcessLookupError):
                    continue
    return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Recordings in every format, in nested folders, one unreadable; and a two-checkpoint ensemble."""
    root = tmp_path_factory.mktemp("archive")
    rec = root / "recordings"
    for i in range(FILES):
        ext = [".wav", ".flac", ".mp3", ".ogg", ".m4a"][i % 5]
        write_audio(rec / f"site{i % 3}" / f"r{i:02d}{ext}", synth_recording(["whistle", "chirp"][i % 2], i, 15.0,
                                                                             32000), 32000)
    (rec / "site0" / "broken.wav").write_text("not audio")
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = create_model("custom_hgnet_1", len(CLASSES))
        with torch.no_grad():  # an untrained head scores 0.5 everywhere: give the models opinions
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        save_checkpoint(root / "ckpt" / f"{seed}.ckpt", "custom_hgnet_1", model, CLASSES, SpecSettings().to_dict())
    return root


def infer(archive: Path, out: Path, *extra: str, wait: bool = True, recordings: Path | None = None):
    args = [sys.executable, "-m", "stages.infer", f"paths.ckpt={archive / 'ckpt'}",
            f"infer.input={recordings or archive / 'recordings'}",
            f"paths.labels={out}", "infer.min_score=0.551", "infer.progress=false", *extra]
    if not wait:
        return STACK.enter_context(procs.popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               text=True, env=os.environ.copy()))
    out = procs.run(args, cwd=ROOT, env=os.environ.copy())
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def outputs(out: Path) -> dict[str, list]:
    """Every file infer wrote but its summary (which names the engine and the times), as rows of cells."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "summary.txt" and p.parent.name != FOLDER:
            files[str(p.relative_to(out))] = [re.split("[\t,;]", line) for line in p.read_text().splitlines()]
    with contextlib.closing(sqlite3.connect(out / FOLDER / "records.sqlite")) as db:  # the labels, full precision
        for rel, labels in db.execute("SELECT rel, labels FROM records"):
            files[f"record {rel}"] = json.loads(labels)
    return files


def assert_same(a: dict[str, list], b: dict[str, list]) -> None:
    """Equal files, but for scores: within 1e-5 (the records) or the printing precision (label files)."""
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name]), name
        for row_a, row_b in zip(a[name], b[name]):
            assert len(row_a) == len(row_b), (name, row_a, row_b)
            for x, y in zip(row_a, row_b):
                if isinstance(x, float) or isinstance(y, float):
                    assert abs(x - y) <= 1e-5, (name, row_a, row_b)
                elif x != y:
                    assert abs(float(x) - float(y)) <= 1.5e-3, (name, row_a, row_b)  # a score printed at 3 decimals


def local_labels_dir(archive: Path) -> Path:
    return archive / "labels_local"


@pytest.fixture(scope="module")
def local_labels(archive):
    out = local_labels_dir(archive)
    infer(archive, out)
    files = outputs(out)
    assert sum(k.endswith("_hawk.txt") for k in files) == FILES and "broken.wav" in files["skipped.csv"][1][0]
    assert len(files["labels.csv"]) > FILES  # labels to compare, not empty files
    return files


def records(out: Path) -> int:
    """Recordings the resume index holds as finished (committed rows)."""
    if not (out / FOLDER / "records.sqlite").exists():
        return 0
    with contextlib.closing(sqlite3.connect(out / FOLDER / "records.sqlite", timeout=60)) as db:
        try:
            return db.execute("SELECT count(*) FROM records").fetchone()[0]
        except sqlite3.OperationalError:  # created, its table not yet
            return 0


def wait_for_records(proc, out: Path, at_least: int) -> int:
    """No deadline of its own: a slow machine is slow, and pytest-timeout bounds a hang."""
    while (n := records(out)) < at_least:
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.02)
    return n


STACK = contextlib.ExitStack()  # infer processes a test left running are killed, by group, when it ends


@pytest.fixture(autouse=True)
def _no_leftover_infer():
    yield
    STACK.close()


def test_infer_survives_a_killed_worker_and_resumes_after_an_interruption(cluster, archive, local_labels, tmp_path):
    # kill -9 the Ray worker holding the model while recordings are still to do: Ray restarts it and retries
    out = tmp_path / "killed_worker"
    proc = infer(archive, out, "engine=ray", f"engine.address={cluster}", "engine.concurrency=1",
                 "infer.commit_every=1", wait=False)
    done_at_kill = wait_for_records(proc, out, 2)
    actor = our_actors()
    assert actor, "no model actor to kill"
    os.kill(actor[0], signal.SIGKILL)
    text = proc.communicate()[0]
    assert proc.returncode == 0, text
    assert done_at_kill < FILES, "the run ended before the kill"
    assert_same(outputs(out), local_labels)

    # kill -9 the stage part-way (here on the local engine, which gets there sooner; the records do not
    # depend on the engine): the rerun on the cluster scores only what is left
    out = tmp_path / "interrupted"
    proc = infer(archive, out, "infer.commit_every=1", wait=False)  # the default commits 64 at once
    wait_for_records(proc, out, 3)
    proc.kill()
    proc.wait()
    kept = records(out)
    assert 3 <= kept < FILES
    text = infer(archive, out, "engine=ray", f"engine.address={cluster}")
    assert "engine ray" in text and f"{FILES - kept} scored now, {kept} resumed" in text
    assert_same(outputs(out), local_labels)


def test_scores_extract_and_embed_on_the_cluster_equal_the_local_engines(cluster, archive, tmp_path):
    files = sorted(p for p in (archive / "recordings").rglob("*") if p.is_file())
    ens = Ensemble.load(archive / "ckpt", "cpu")
    local = {f.path: f for f in score_files(files, ens, 1.5).files}
    rec = archive / "recordings" / "site1"
    settings = SpecSettings()
    extract_class(rec, tmp_path / "local.db", tmp_path / "local.csv", "Rising Whistler", "RIWH", settings, workers=1,
                  show_progress=False)
    with RayEngine(address=cluster) as eng:
        remote = list(iter_scores(files, ens, 1.5, engine=eng))
        scored = [r for r in remote if isinstance(r, FileScores)]
        assert len(scored) == len(local) == FILES and len(remote) == FILES + 1
        for r in scored:
            assert np.array_equal(r.offsets, local[r.path].offsets)
            assert np.allclose(r.scores, local[r.path].scores, atol=1e-5)

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
        # links: a recording keeps the name it has in the folder; two links to one file are two inputs
        linked = tmp_path / "linked"
        (linked / "b").mkdir(parents=True)
        (linked / "a.wav").symlink_to(archive / "recordings" / "site0" / "r00.wav")
        (linked / "b" / "a.wav").symlink_to(linked / "a.wav")
        extract_class(linked, tmp_path / "links.db", tmp_path / "links.csv", "Rising Whistler", "RIWH", settings,
                      show_progress=False, engine=eng)
        with SpecDB(tmp_path / "links.db") as db:
            assert set(db.recordings()) == {"a.wav"}
        both = [linked / "a.wav", linked / "b" / "a.wav"]
        assert sorted(r.path for r in iter_scores(both, ens, 1.5, engine=eng)) == both
    # the cluster's recordings arrive in any order, so ids differ: compare by recording and offset
    vectors = {}
    for name in ("local", "ray"):
        e = load_embeddings(tmp_path / f"{name}.npz")
        with SpecDB(tmp_path / f"{name}.db") as db:
            where = {r.id: (r.filename, r.offset) for r in db.spectrograms()}
        vectors[name] = {where[i]: v for i, v in zip(e.ids.tolist(), e.vectors)}
    assert len(vectors["local"]) == res.added_spectrograms and vectors["local"].keys() == vectors["ray"].keys()
    assert all(np.allclose(v, vectors["ray"][k], atol=1e-5) for k, v in vectors["local"].items())


def test_a_long_recording_is_scored_in_parts_across_the_cluster_as_the_local_engine_scores_it(cluster, archive,
                                                                                               tmp_path, monkeypatch):
    # 61 s in parts of 12 s: five parts on two nodes, joined into one recording equal to the local result
    long = tmp_path / "long.flac"
    write_audio(long, synth_recording("warble", 5, 61.0, 44100), 44100)
    ens = Ensemble.load(archive / "ckpt", "cpu")
    local = score_files([long], ens, 1.5).files[0]
    with RayEngine(address=cluster, part_seconds=12) as eng:
        assert len(recording_parts(str(long), segment_settings(ens.settings, 1.5), eng.part_seconds)) == 5
        def no_header_here(path):
            raise AssertionError(f"the driver read the header of {path}; workers should")

        monkeypatch.setattr("hawk.infer.duration", no_header_here)  # this process only, not the workers
        (remote,) = list(iter_scores([long], ens, 1.5, engine=eng))
    assert remote.path == long and remote.seconds == pytest.approx(local.seconds)
    assert np.array_equal(remote.offsets, local.offsets) and np.allclose(remote.scores, local.scores, atol=1e-5)


def test_local_engine_resumes_and_new_settings_or_weights_score_again(archive, local_labels, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_labels_dir(archive), out)
    assert f"0 scored now, {FILES} resumed" in infer(archive, out)
    assert_same(outputs(out), local_labels)
    ckpts = sorted((archive / "ckpt").glob("*.ckpt"))
    settings = {"min_score": 0.551, "overlap": 1.5}
    index = LabelRecords(out, run_key(ckpts, settings))
    assert index.key != run_key(ckpts, {**settings, "min_score": 0.6}) != run_key(ckpts[:1], settings)
    rel = Path("site0/r00.wav")
    with index:
        index.write(rel, 15.0, [])
    with LabelRecords(out, run_key(ckpts, settings)) as same, LabelRecords(out, run_key(ckpts[:1], settings)) as other:
        assert same.finished()[str(rel)] == 15.0 and str(rel) not in other.finished()
    # rows are committed a batch at a time (and when the index closes): a row always vouches for label files
    batched = tmp_path / "batched"
    with LabelRecords(batched, "k", batch=3, seconds=math.inf) as index:
        index.write("a.wav", 1.0, [])
        index.write("b.wav", 1.0, [])
        assert records(batched) == 0
        index.write("c.wav", 1.0, [])
        assert records(batched) == 3
        index.write("d.wav", 1.0, [])
    assert records(batched) == 4


def test_labels_csv_grows_by_appending_and_is_written_anew_only_when_rows_lose_their_record(archive, local_labels,
                                                                                             tmp_path):
    rec, out = tmp_path / "recordings", tmp_path / "out"
    shutil.copytree(archive / "recordings", rec)
    first = rec / "site0" / "r00.wav"  # the first input in order: a rewrite would put its rows first
    first.rename(tmp_path / first.name)
    infer(archive, out, recordings=rec)
    before = (out / "labels.csv").read_bytes()
    (tmp_path / first.name).rename(first)
    assert f"1 scored now, {FILES - 1} resumed" in infer(archive, out, recordings=rec)
    grown = (out / "labels.csv").read_bytes()
    assert grown.startswith(before) and grown != before  # appended, the earlier rows untouched
    header, *rows = local_labels["labels.csv"]
    new = [r for r in outputs(out)["labels.csv"][1:] if r[0] == "site0/r00.wav"]
    assert new and outputs(out)["labels.csv"][-len(new):] == new  # the new recording's rows come last
    assert sorted(outputs(out)["labels.csv"][1:]) == sorted(rows)

    # a run killed while appending leaves a partial end: the next run cuts it back to what was committed
    with open(out / "labels.csv", "ab") as f:
        f.write(b"site2/r05.mp3,1.50,4.")
    assert f"0 scored now, {FILES} resumed" in infer(archive, out, recordings=rec)
    assert (out / "labels.csv").read_bytes() == grown

    # an input removed loses its rows, label files and record; added back, it is scored again
    gone = rec / "site1" / "r01.flac"
    gone.rename(tmp_path / gone.name)
    assert "0 scored now" in infer(archive, out, recordings=rec)
    files = outputs(out)
    assert not any("r01" in k for k in files) and not any(r[0] == "site1/r01.flac" for r in files["labels.csv"])
    (tmp_path / gone.name).rename(gone)
    assert f"1 scored now, {FILES - 1} resumed" in infer(archive, out, recordings=rec)
    assert (out / "site1" / "r01_hawk.txt").exists()
    assert sorted(outputs(out)["labels.csv"][1:]) == sorted(rows)


def test_an_address_where_nothing_listens_fails_at_once_naming_the_cause():
    with socket.socket() as s:  # a port that was free a moment ago, and nothing listens on now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HawkError, match=rf"engine.address=127.0.0.1:{port}: nothing is listening there"):
        RayEngine(address=f"127.0.0.1:{port}").__enter__()
    assert "rejected this process's authentication" in connect_failure(RuntimeError("Authentication token mismatch"))
    assert "versions differ" in connect_failure(RuntimeError("Version mismatch: the cluster runs Ray 2.59"))
    assert "no Ray cluster answers there" in connect_failure(ConnectionError("could not connect"))


def test_an_item_that_always_kills_its_worker_is_reported_lost_and_the_rest_come_back(cluster):
    """Bounded retries: a recording that takes its worker down every time (as an OOM kill or a decoder
    crash would) ends as one lost item with the reason, and costs no other item of its block."""
    def work(i):
        if i == 5:
            os._exit(1)
        return i * 10

    def call(model, item):
        if item[0] == 3:
            os._exit(1)
        return item[0] * model

    with RayEngine(address=cluster, max_retries=1) as eng:
        got = {k[0]: v for k, v in eng.map(work, [(i,) for i in range(12)], lambda item, why: f"lost: {why}")}
        scored = {k[0]: v for k, v in eng.map_with_model([(i,) for i in range(6)], lambda: 2, call,
                                                         lambda item, why: f"lost: {why}")}
    assert {i: v for i, v in got.items() if i != 5} == {i: i * 10 for i in range(12) if i != 5}
    assert got[5] == "lost: its worker died 4 times (out of memory, or a crash while decoding or scoring it)"
    assert {i: v for i, v in scored.items() if i != 3} == {i: i * 2 for i in range(6) if i != 3}
    assert scored[3].startswith("lost: its worker died")


def test_the_model_pool_grows_onto_a_node_that_joins_mid_run(cluster):
    """Without engine.concurrency the actor pool starts with what the cluster holds (two one-CPU
    nodes) and grows as an autoscaling cluster adds nodes: here a third joins while recordings wait."""
    def call(model, item):
        import ray

        time.sleep(0.3)
        return ray.get_runtime_context().get_node_id()

    common = "--num-cpus=1 --object-store-memory=150000000 --disable-usage-stats"
    nodes = []
    with contextlib.ExitStack() as stack, RayEngine(address=cluster) as eng:
        for k, (_, node) in enumerate(eng.map_with_model([(i,) for i in range(400)], lambda: None, call,
                                                         lambda item, why: why)):
            nodes.append(node)
            if k == 0:
                import ray

                before = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
                _start_node(f"--address={cluster} {common}", stack)  # killed, by its group, when the test ends
    assert len(nodes) == 400 and len(before) == 2
    assert set(nodes) - before, "no recording was scored on the node that joined"


def test_nothing_to_do_never_starts_ray():
    """A rerun with nothing left to score decides so before Ray's ~20 s start-up."""
    import ray

    with RayEngine() as eng:
        assert list(eng.map(abs, [], lambda item, why: why)) == []
        assert list(eng.map_with_model([], lambda: 1, lambda model, item: item, lambda item, why: why)) == []
        assert not ray.is_initialized()
