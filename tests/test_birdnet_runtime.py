"""BirdNET's fast path (front end as matrix products, network on OpenVINO) against the model as shipped
on LiteRT: the same embeddings on real audio, digital silence and zero-padded ends; a clear error for
an unknown runtime; the shipped model, with a warning, when the start-up check fails; the check's
reference cached, and made again when the cache is bad; the embedder starts without torch."""

import subprocess
import sys

import numpy as np
import pytest

import hawk.embed.birdnet as birdnet
from hawk.download.demo import synth_recording
from hawk.embed import EmbedderError, create_embedder
from hawk.fsutil import cache_dir


@pytest.fixture(scope="module")
def segments() -> np.ndarray:
    """3-s segments at 48 kHz: calls of each demo kind, noise, silence, and a call that ends in zeros."""
    rate, n = 48000, 144000
    rows = [synth_recording(kind, seed, 3.0, rate)[:n] for seed, kind in enumerate(("whistle", "warble", "chirp"))]
    rows.append(0.05 * np.random.default_rng(7).standard_normal(n))
    rows.append(np.zeros(n))
    padded = np.zeros(n)
    padded[: n // 3] = rows[1][: n // 3]
    rows.append(padded)
    return np.stack([np.pad(r, (0, n - len(r))) for r in rows]).astype(np.float32)


@pytest.fixture(scope="module")
def shipped() -> birdnet.BirdNETEmbedder:
    return create_embedder("birdnet", threads=1, runtime="litert")


def test_fast_path_embeds_as_the_shipped_model(segments, shipped):
    fast = create_embedder("birdnet", threads=1, batch_size=4)
    assert fast.runtime == "front+openvino" and shipped.runtime == "litert"
    want, got = shipped.embed(segments), fast.embed(segments)
    assert got.shape == want.shape == (len(segments), 1024)
    calls = slice(0, 5)  # the shipped model's own float32 RFFT rounds a zero-padded end (the last row) to ~1e-2
    assert np.abs(got[calls] - want[calls]).max() < birdnet.PROBE_TOLERANCE
    cos = np.sum(got * want, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.9999
    assert np.allclose(fast.embed(segments[:3]), got[:3], atol=1e-6)  # a batch of another size, the same vectors


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(EmbedderError, match="embedder.runtime must be one of auto, litert, got 'tflite'"):
        create_embedder("birdnet", runtime="tflite")


def test_a_failed_check_falls_back_to_the_shipped_model(segments, shipped, monkeypatch):
    monkeypatch.setattr(birdnet, "PROBE_TOLERANCE", 0.0)  # no faster path can match to the last bit
    with pytest.warns(UserWarning, match="the fast path is not used .*differ from the shipped model's"):
        slow = create_embedder("birdnet", threads=1)
    assert slow.runtime == "litert"
    assert np.array_equal(slow.embed(segments[:2]), shipped.embed(segments[:2]))


def test_the_shipped_models_reference_is_cached_and_a_bad_cache_is_made_again(segments, shipped):
    create_embedder("birdnet", threads=1)
    (cached,) = cache_dir().glob("birdnet-probe-*.npy")
    want = np.load(cached)
    assert np.array_equal(want, shipped.embed(birdnet.probe()))
    cached.write_bytes(b"not an array")
    assert create_embedder("birdnet", threads=1).runtime == "front+openvino"
    assert np.array_equal(np.load(cached), want)


def test_the_fast_path_starts_without_torch():
    """Every embed process starts one: torch's import alone would add ~1.4 s to each (a stage per class)."""
    code = ("import sys; from hawk.embed.birdnet import BirdNETEmbedder; e = BirdNETEmbedder(); "
            "print(e.runtime, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["front+openvino", "False"], r.stdout
