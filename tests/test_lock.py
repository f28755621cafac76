"""The environment is exactly uv.lock, and a lock that no longer matches pyproject.toml fails loudly."""

import importlib.metadata
import os
import shutil
import tomllib

import pytest

from tests import procs
from tests.conftest import ROOT

LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
REGISTRY = [p for p in LOCK["package"] if "registry" in p["source"]]


def test_lock_pins_the_torch_trio():
    versions = {p["name"]: p["version"] for p in REGISTRY}
    assert (versions["torch"], versions["torchaudio"], versions["torchvision"]) == ("2.11.0", "2.11.0", "0.26.0")


def test_every_locked_file_has_a_sha256():
    for p in REGISTRY:
        files = p.get("wheels", []) + ([p["sdist"]] if "sdist" in p else [])
        assert files, p["name"]
        assert all(f.get("hash", "").startswith("sha256:") for f in files), p["name"]


def test_installed_environment_is_exactly_the_lock():
    wrong = {}
    for p in REGISTRY:
        try:
            have = importlib.metadata.version(p["name"])
        except importlib.metadata.PackageNotFoundError:
            have = "missing"
        if have != p["version"]:
            wrong[p["name"]] = (p["version"], have)
    assert not wrong, f"installed packages differ from uv.lock (locked, installed): {wrong}; run `make install`"


UV = ROOT / ".tools" / "bin" / "uv"


@pytest.fixture
def lock_project(tmp_path):
    """The files `make check-lock` reads, with the repo's bootstrapped uv (mtimes kept, so make
    does not bootstrap it again)."""
    if not UV.exists():
        pytest.skip("uv is bootstrapped by make (make install / make test)")
    for name in ("Makefile", "pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "tools", tmp_path / "tools", copy_function=shutil.copy2)
    os.symlink(ROOT / ".tools", tmp_path / ".tools")
    return tmp_path


def _check(folder):
    return procs.run(["make", "--no-print-directory", "check-lock"], cwd=folder)


def test_check_lock_passes_when_lock_matches(lock_project):
    r = _check(lock_project)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_lock_fails_clearly_on_drift(lock_project):
    py = lock_project / "pyproject.toml"
    py.write_text(py.read_text().replace('"tqdm>=4.60",', '"tqdm>=4.60",\n  "six==1.16.0",'))
    r = _check(lock_project)
    assert r.returncode != 0
    assert "uv.lock does not match pyproject.toml" in r.stdout + r.stderr and "make lock" in r.stdout + r.stderr
