from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hawk.download.demo import synth_recording, write_audio

ROOT = Path(__file__).resolve().parent.parent


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
