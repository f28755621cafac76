from __future__ import annotations

import os
from pathlib import Path

# `make test` runs the suite in parallel (pytest-xdist): each worker and the stages it starts get their
# share of the cores, since torch threads that outnumber the cores wait on one another (10x slower).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numpy as np
import pytest

from hawk.download.demo import synth_recording, write_audio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def runtime_cache(tmp_path_factory) -> Path:
    """Exported models (hawk.runtime) go to the session's temp folder, for stages run as processes too,
    never to the user's ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("hawk-cache")
    os.environ["HAWK_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """Real recordings in every supported format, several rates, mono and stereo."""
    d = tmp_path_factory.mktemp("audio")
    for name, sr in [("a.wav", 44100), ("b.flac", 32000), ("c.ogg", 48000), ("d.mp3", 22050), ("e.m4a", 44100)]:
        write_audio(d / name, synth_recording("whistle", 1, 7.0, sr), sr)
    return d


@pytest.fixture(scope="session")
def audio_bytes(audio_dir) -> dict[str, bytes]:
    """What the fake API serves under /audio/<name>."""
    files = {
        "xc1072882.mp3": "d.mp3", "xc998877.wav": "a.wav", "xc555002.flac": "b.flac",
        "n263113.m4a": "e.m4a", "n263200.wav": "a.wav", "n263201.mp3": "d.mp3", "n263300.m4a": "e.m4a",
    }
    return {k: (audio_dir / v).read_bytes() for k, v in files.items()}


@pytest.fixture
def tone():
    def make(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
        t = np.arange(int(seconds * sr)) / sr
        return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


DEMO_CLASSES = [("Rising Whistler", "RIWH", "whistle"), ("Falling Chirper", "FACH", "chirp"), ("Noise", "Noise", "noise")]


@pytest.fixture(scope="session")
def train_db(tmp_path_factory) -> Path:
    """A real training database of three demo classes (four recordings each, every spectrogram kept)."""
    from hawk.curation import merge_dbs
    from hawk.download.demo import make_demo_recordings
    from hawk.extract import extract_class
    from hawk.spectrogram import SpecSettings

    root = tmp_path_factory.mktemp("traindb")
    parts = []
    for k, (name, code, call) in enumerate(DEMO_CLASSES):
        rec = root / "recordings" / code
        rec.mkdir(parents=True)
        make_demo_recordings(rec, call, 4, seed=20 + k)
        extract_class(rec, root / f"{code}.db", root / f"{code}.csv", name, code, SpecSettings(), workers=1,
                      show_progress=False)
        parts.append(root / f"{code}.db")
    merge_dbs(parts, root / "train.db")
    return root / "train.db"


FIRST = ("test_dvc_pipeline.py", "test_ray_engine.py", "test_training.py")  # the longest modules


def pytest_collection_modifyitems(items) -> None:
    """The longest modules first, so parallel workers finish together (order within a module kept)."""
    rank = {name: k for k, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))
