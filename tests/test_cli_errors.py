"""Expected errors end a stage with one `error: ...` line and exit status 2, naming what is wrong;
HAWK_DEBUG=1 shows the traceback instead. Real stage processes in a throwaway project folder."""

import os
import shutil
import sys

import pytest
import yaml

from tests import procs
from tests.conftest import ROOT
from tests.fakeapi import KEY, FakeAPI


def project(tmp_path, classes=None, **sections):
    """A project folder holding params.yaml (the repo's, with ``classes`` and sections replaced)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if classes is not None:
        params["classes"] = classes
    for key, value in sections.items():
        params[key] = {**params[key], **value}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


def stage(cwd, *args, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("XC_API_KEY", "HAWK_DEBUG")}
    full.update(env)
    return procs.run([sys.executable, "-m", *args], cwd=cwd, env=full)


def one_error_line(r, *parts):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


XC = {"AMRO": {"name": "American Robin", "sources": [{"kind": "xeno_canto", "query": 'sp:"turdus migratorius"'}]}}


def test_mistyped_override_names_the_key_and_its_neighbours(tmp_path):
    r = stage(project(tmp_path), "stages.extract", "--code", "RIWH", "audio.ofset=3")
    one_error_line(r, "unknown setting 'audio.ofset'", "nearest known keys: audio.offset")


def test_unknown_class(tmp_path):
    r = stage(project(tmp_path), "stages.extract", "--code", "NOPE")
    one_error_line(r, "class 'NOPE' is not declared", "RIWH")


def test_unknown_source_kind(tmp_path):
    bad = {"AMRO": {"name": "American Robin", "sources": [{"kind": "xenocanto", "query": "x"}]}}
    r = stage(project(tmp_path, bad), "stages.download", "--code", "AMRO")
    one_error_line(r, "class 'AMRO', source #1: unknown source kind 'xenocanto'")


def test_missing_api_key(tmp_path):
    r = stage(project(tmp_path, XC), "stages.download", "--code", "AMRO")
    one_error_line(r, "class AMRO", "XC_API_KEY")


@pytest.fixture
def api(audio_bytes):
    with FakeAPI(audio_bytes) as a:
        yield a


def _download_settings(api):
    return {"xeno_canto": {"base_url": api.url, "per_page": 500, "qualities": ["A", "B", "C", "D", ""],
                           "exclude_licenses": ["by-nc-nd"]}, "min_interval": 0, "retries": 1, "backoff": 0.01}


def test_rejected_key_and_debug_traceback(tmp_path, api):
    folder = project(tmp_path, XC, download=_download_settings(api))
    r = stage(folder, "stages.download", "--code", "AMRO", XC_API_KEY="wrong-secret")
    line = one_error_line(r, "HTTP 401", "invalid 'key'")
    assert "wrong-secret" not in line
    r = stage(folder, "stages.download", "--code", "AMRO", XC_API_KEY="wrong-secret", HAWK_DEBUG="1")
    assert r.returncode != 0 and "Traceback" in r.stderr and "AuthError" in r.stderr


def test_failed_listing_fails_the_stage(tmp_path, api):
    api.faults["/api/3/recordings?page=2"] = [503] * 5
    folder = project(tmp_path, XC, download=_download_settings(api))
    r = stage(folder, "stages.download", "--code", "AMRO", XC_API_KEY=KEY)
    one_error_line(r, "class AMRO", "listing failed", "run again to resume")
    assert (folder / "data/recordings/AMRO/XC1072882.mp3").exists()  # what arrived stays


def test_bad_annotations_fail_the_test_stage(tmp_path):
    folder = project(tmp_path)
    (folder / "data/test/recordings").mkdir(parents=True)
    (folder / "data/test/annotations.csv").write_text("recording,species,start_time,end_time\nS1,RIWH,4,3\n")
    r = stage(folder, "stages.test")
    one_error_line(r, "annotations.csv: line 2: end_time 3 is not after start_time 4")


def _conf_project(tmp_path, classes):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "conf/classes/demo.yaml").write_text(yaml.safe_dump(classes))
    (tmp_path / "params.yaml").write_text("untouched: true\n")
    return tmp_path


@pytest.mark.parametrize("classes, message", [
    ({"AMRO": {"name": "A", "sources": [{"kind": "xenocanto", "query": "x"}]}}, "unknown source kind 'xenocanto'"),
    ({"AMRO": {"name": "A", "sources": [{"kind": "local", "path": "no/such/folder"}]}},
     "class 'AMRO', source #1 (local): folder no/such/folder does not exist"),
    ({"AMRO": {"name": "A"}, "amro": {"name": "B"}}, "duplicate code"),
])
def test_compose_validates_classes_before_writing_params(tmp_path, classes, message):
    folder = _conf_project(tmp_path, classes)
    r = stage(folder, "stages.compose")
    one_error_line(r, message)
    assert (folder / "params.yaml").read_text() == "untouched: true\n"
