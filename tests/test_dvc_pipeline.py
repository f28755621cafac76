"""The pipeline under real DVC, in a temporary git repository holding a copy of the project."""

import csv
import json
import os
import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from hawk.doubt import REASONS, read_queue
from hawk.embed.store import load_embeddings
from hawk.review import FieldQueueFolder, QueueFolder
from tests import procs
from tests.conftest import ROOT

# Slow on a busy machine (two queued experiments train twice): the timeout is for hangs only.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
CODES = ["RIWH", "FACH", "Noise"]  # a three-class demo keeps the test quick
UPSTREAM = ("download", "extract", "dedup", "embed", "search", "select")


def sh(repo: Path, *cmd: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    out = procs.run(cmd, cwd=repo, env=env)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def compose(repo: Path) -> None:
    sh(repo, sys.executable, "-m", "stages.compose")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("project")
    for name in ("hawk", "stages", "conf"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    # .gitignore too: with mlflow.db in git, `dvc exp run --queue` stashes and rewrites it, and a reader
    # holding the old file never sees the runs that follow
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "data/field/README.txt"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    # a smaller demo keeps the test quick
    cfg = repo / "conf" / "download" / "default.yaml"
    cfg.write_text(cfg.read_text().replace("recordings: 8", "recordings: 3"))
    (repo / "conf" / "extract" / "default.yaml").write_text("workers: 1\ncategory: bird\nprogress: false\n")
    train = repo / "conf" / "train" / "default.yaml"
    train.write_text(train.read_text().replace("model_name: embed_head", "model_name: custom_hgnet_1")
                     .replace("num_epochs: 15", "num_epochs: 1").replace("batch_size: 64", "batch_size: 16")
                     .replace("num_workers: auto", "num_workers: 0").replace("save_last_n: 3", "save_last_n: 1"))
    (repo / "conf" / "classes" / "demo.yaml").write_text(
        "RIWH: {name: Rising Whistler, sources: [{kind: demo, call: whistle}]}\n"
        "FACH: {name: Falling Chirper, sources: [{kind: demo, call: chirp}]}\n"
        "Noise: {name: Noise, sources: [{kind: demo, call: noise}]}\n")
    compose(repo)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "project")
    return repo


def test_fresh_repro_builds_every_class_then_does_nothing(repo):
    out = sh(repo, "dvc", "repro")
    longest = max(out.splitlines(), key=len)
    assert len(longest) <= 300 and "\r" not in out, longest  # progress in a log: lines, not bar frames
    codes = CODES
    assert {f"download@{c}" for c in codes} | {f"extract@{c}" for c in codes} <= ran(out)
    for c in codes:
        with sqlite3.connect(repo / "data" / "db" / f"{c}.db") as db:
            assert db.execute("SELECT COUNT(*) FROM Spectrogram").fetchone()[0] > 5
    assert {f"{s}@{c}" for s in ("embed", "search", "select") for c in codes} | {"dedup", "trainset"} <= ran(out)
    with sqlite3.connect(repo / "data" / "train.db") as db:
        per_class = dict(db.execute("SELECT c.Code, COUNT(*) FROM Spectrogram s JOIN Recording r ON r.ID = "
                                    "s.RecordingID JOIN Subcategory c ON c.ID = r.SubcategoryID GROUP BY c.Code"))
    assert set(per_class) == set(codes) and min(per_class.values()) > 3  # the demo needs no hand work
    assert {"pickle", "train", "infer", "test"} | {"doubt", "field"} <= ran(out)
    test_metrics = json.loads((repo / "metrics" / "test.json").read_text())
    assert test_metrics["kind"] == "per_sound" and test_metrics["annotated"]["macro_ap"] is not None
    assert list((repo / "data" / "labels").glob("*_hawk.txt")) and (repo / "data" / "labels" / "labels.csv").exists()
    shown = sh(repo, "dvc", "exp", "show", "--csv")
    assert "annotated.macro_ap" in shown and "val_macro_ap" in shown
    assert (repo / "data" / "classes.txt").read_text().endswith("Falling Chirper,FACH\nNoise,Noise\n")
    # embeddings only where a query uses them; a by-hand search embeds the rest outside dvc's outputs
    assert len(load_embeddings(repo / "data" / "embed" / "RIWH.npz").ids) > 5
    assert load_embeddings(repo / "data" / "embed" / "Noise.npz").meta["unused"]
    noise = sorted((repo / "data" / "recordings" / "Noise").glob("DEMO*"))[0].name
    out = sh(repo, sys.executable, "-m", "stages.search", "--code", "Noise", "--recording", noise, "embedder.threads=1")
    assert len(load_embeddings(repo / "data" / "embed" / "_manual" / "Noise.npz").ids) > 5
    assert re.search(r"-> [1-9]\d* images", out), out
    assert ran(sh(repo, "dvc", "repro")) == set()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "demo run")


def train_rows(repo: Path) -> set[tuple[str, float]]:
    with sqlite3.connect(repo / "data" / "train.db") as db:
        return set(db.execute("SELECT r.FileName, s.Offset FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID"))


def queued(repo: Path, code: str) -> list[dict[str, str]]:
    return read_queue(repo / "data" / "doubt" / code)


def test_a_verdict_in_the_doubt_queue_retrains_that_class_and_is_not_asked_again(repo):
    """The agile loop under DVC: a "no" on a kept window of the queue lands in the curation folder;
    `dvc repro` reruns that class's select (no other class's), trains without the window, and the
    next queue never asks about it again."""
    rows = queued(repo, "RIWH")
    assert rows and all(r["reason"] in REASONS and r["why"] for r in rows)
    row = next(r for r in rows if r["kept"] == "1")
    window = (row["file"], float(row["offset"]))
    assert window in train_rows(repo)
    queue = QueueFolder("RIWH-doubt", repo / "data/doubt/RIWH", repo / "data/curation/RIWH",
                        repo / "data/recordings/RIWH")
    assert queue.move(row["image"], "rejected").status == "rejected"
    out = sh(repo, "dvc", "repro")
    assert {s for s in ran(out) if s.startswith(UPSTREAM)} == {"select@RIWH"}, ran(out)
    assert {"trainset", "pickle", "train", "doubt"} <= ran(out)
    assert window not in train_rows(repo)
    assert window not in {(r["file"], float(r["offset"])) for r in queued(repo, "RIWH")}
    assert "1 rejected by you" in out
    assert ran(sh(repo, "dvc", "repro")) == set()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "a verdict")


def test_a_yes_in_the_field_queue_becomes_a_training_window_of_that_class(repo):
    """The field queue asks about the user's own recordings (infer.input); a yes writes the window's
    3 s into data/field/<CODE>/, and `dvc repro` makes it a training row of that class at pickle (no
    class's download, extract, embed, search or select reruns), trains on it and never asks about it
    again; taking it back takes the row out."""
    rows = read_queue(repo / "data/field_queue/RIWH")
    assert rows and {r["reason"] for r in rows} <= {"top", "margin"}
    row = rows[0]
    field = FieldQueueFolder("RIWH-field", repo / "data/field_queue/RIWH", repo / "data/field/RIWH",
                             repo / "data/test/recordings", 37120, 3.0)
    assert field.move(row["image"], "kept").status == "kept"
    (clip,) = (repo / "data/field/RIWH").glob("*.wav")
    out = sh(repo, "dvc", "repro")
    assert not {s for s in ran(out) if s.startswith(UPSTREAM)} and {"pickle", "train", "field"} <= ran(out), ran(out)
    assert ("RIWH", f"field-{clip.name}", "field") in specset_rows(repo)
    assert "1 clips you confirmed in your own recordings (RIWH 1)" in out
    stem, offset = Path(row["file"]).stem, float(row["offset"])
    assert (stem, offset) not in {(Path(r["file"]).stem, float(r["offset"]))
                                  for r in read_queue(repo / "data/field_queue/RIWH")}
    clip.unlink()  # taken back: the class loses the window again
    shutil.rmtree(repo / "data/curation/RIWH/rejected")  # and the no of the test before: the demo as it was
    sh(repo, "dvc", "repro")
    assert not {r for r in specset_rows(repo) if r[2] == "field"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "verdicts taken back")


def specset_rows(repo: Path) -> set[tuple[str, str, str]]:
    """(code, file, source) of every row of the training set pickle made."""
    with open(repo / "data" / "specs" / "rows.csv", newline="") as f:
        return {(r["code"], r["file"], r["source"]) for r in csv.DictReader(f)}


def test_experiments_runs_and_queued_sweeps(repo):
    # right after the demo run: a training setting reruns training and what follows, nothing upstream
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "lr-low", "-S", "train.lr=0.001")
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "lr-high", "-S", "train.lr=0.002")
    out = sh(repo, "dvc", "exp", "run", "--run-all")
    assert "train" in ran(out) and not {s for s in ran(out) if s.startswith((*UPSTREAM, "pickle"))}
    table = sh(repo, "dvc", "exp", "show", "--csv")
    assert "val_macro_ap" in table and "0.001" in table and "0.002" in table
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("hawk").experiment_id])
    by_lr = {r.data.params.get("train.lr"): r for r in runs}
    assert {"0.001", "0.002"} <= set(by_lr)  # queued runs report to the project's MLflow store too
    specs = json.loads((repo / "data" / "specs" / "meta.json").read_text())["data"]["specs_sha256"]
    baseline = sh(repo, "git", "rev-parse", "HEAD").strip()
    for lr, name in (("0.001", "lr-low"), ("0.002", "lr-high")):
        run = by_lr[lr]
        assert run.info.run_name == f"{name}-custom_hgnet_1"  # what `dvc exp show` calls it, then the model
        tags = run.data.tags
        assert tags["dvc.experiment"] == name and tags["dvc.baseline"] == baseline
        assert tags["hawk.train_data"] == specs and tags["hawk.preset"] == "none" and tags["hawk.version"]
        assert len(tags["hawk.classes"]) == 64
    plain = [r for r in runs if "dvc.experiment" not in r.data.tags]  # the demo's own `dvc repro` run
    assert plain and plain[0].info.run_name == f"default-{specs[:7]}-custom_hgnet_1"
    # the embedding head instead: every class is embedded, the training set carries the vectors
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "head", "-S", "train.model_name=embed_head")
    out = sh(repo, "dvc", "exp", "run", "--run-all")
    assert {"embed@Noise", "pickle", "train", "infer", "test"} <= ran(out)
    head = [r for r in client.search_runs([client.get_experiment_by_name("hawk").experiment_id])
            if r.data.tags.get("dvc.experiment") == "head"]
    assert [r.info.run_name for r in head] == ["head-embed_head"] and "val_macro_ap" in head[0].data.metrics
    assert "head" in sh(repo, "dvc", "exp", "show", "--csv")


def test_adding_a_class_runs_only_that_class(repo):
    demo = repo / "conf" / "classes" / "demo.yaml"
    demo.write_text(demo.read_text() + "SOSO:\n  name: Song Sparrowish\n  sources: [{kind: demo, call: song}]\n")
    compose(repo)
    # up to dedup, which reads every class's database: every download and extract is upstream of it
    stages = {s for s in ran(sh(repo, "dvc", "repro", "dedup")) if s.startswith(("download", "extract"))}
    assert stages == {"download@SOSO", "extract@SOSO"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "add SOSO")


def test_deleting_a_kept_image_reruns_only_that_class(repo):
    select = repo / "conf" / "select" / "demo.yaml"
    select.write_text(select.read_text().replace("auto_keep: true", "auto_keep: false"))
    compose(repo)
    sh(repo, "dvc", "repro", "trainset")  # up to the training database: pickle refuses classes left empty
    sh(repo, sys.executable, "-m", "stages.curate", "--code", "RIWH")
    kept = sorted((repo / "data" / "curation" / "RIWH").glob("*.jpeg"))
    assert len(kept) > 3
    first = {s for s in ran(sh(repo, "dvc", "repro", "trainset")) if s.startswith(UPSTREAM)}
    assert first == {"select@RIWH"}
    before = train_rows(repo)
    kept[1].unlink()
    out = sh(repo, "dvc", "repro", "trainset")
    assert {s for s in ran(out) if s.startswith(UPSTREAM)} == {"select@RIWH"} and "trainset" in ran(out)
    assert not kept[1].exists()  # never restored
    assert len(before) - len(train_rows(repo)) == 1
    assert "0 new images" in sh(repo, sys.executable, "-m", "stages.curate", "--code", "RIWH")  # never re-added
    assert not kept[1].exists()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "curated")


def test_offset_change_reruns_extract_not_download(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "audio.offset=3", "dedup")  # every download and extract is upstream
    stages = ran(out)
    assert not {s for s in stages if s.startswith("download")}
    assert {s for s in stages if s.startswith("extract")} == {
        f"extract@{c}" for c in [*CODES, "SOSO"]}
    assert "offset: 3" in (repo / "params.yaml").read_text()
    with sqlite3.connect(repo / "data" / "db" / "RIWH.db") as db:
        offsets = [r[0] for r in db.execute("SELECT Offset FROM Spectrogram")]
    assert offsets and all(o % 3 == 0 for o in offsets)
