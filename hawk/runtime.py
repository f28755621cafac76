"""Where a CNN runs at inference: OpenVINO, ONNX Runtime or PyTorch.

The checkpoint stays the source of truth. A runtime other than PyTorch gets an ONNX export of the
checkpoint's network, made on first load and cached by the checkpoint's sha256 (with the input shape
and the torch version). Before a runtime is first used its scores on a fixed probe batch are compared
with PyTorch's: beyond ``tolerance`` (infer's accuracy rule, 1e-3 in score) the next runtime is
tried, so a faster runtime never changes which segments are labelled. A runtime whose package is
missing is skipped the same way, down to PyTorch, which always works. A passed check is cached beside
the export, for that runtime's version, torch's and the CPU's name, so a later load builds no PyTorch
model at all (nor imports timm): a short run starts about two seconds sooner.

``auto`` tries OpenVINO, then ONNX Runtime, then PyTorch on a CPU (the measured order on x86,
``benchmarks/infer_profile.py``), and PyTorch on a GPU.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from hawk.errors import HawkError
from hawk.fsutil import atomic_open, cache_dir, sha256_file

log = logging.getLogger(__name__)
RUNTIMES = ("openvino", "onnxruntime", "torch")
TOLERANCE = 1e-3  # largest score difference from PyTorch a runtime may make
Runner = Callable[[np.ndarray], np.ndarray]  # (n, 1, height, width) float32 in [0, 1] -> (n, classes) logits


class RuntimeUnavailable(HawkError, RuntimeError):
    """A runtime that cannot run this model here (package missing, export failed, scores differ)."""


def order(runtime: str, device: str) -> list[str]:
    """The runtimes to try, in turn, for ``runtime`` (a name or ``auto``) on ``device``."""
    if runtime == "auto":
        return ["torch"] if device != "cpu" else list(RUNTIMES)
    if runtime not in RUNTIMES:
        raise ValueError(f"infer.runtime must be auto or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "torch" and device != "cpu":
        raise ValueError(f"infer.runtime={runtime} runs on the CPU only; use torch (or auto) with device {device}")
    return [runtime] if runtime == "torch" else [runtime, "torch"]


def torch_runner(model: torch.nn.Module, device: str) -> Runner:
    model = model.to(device).to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
        return model(t).float().cpu().numpy()

    return run


def onnx_path(shape: tuple[int, int], key: str) -> Path:
    return cache_dir() / f"{key}-{shape[0]}x{shape[1]}-torch{torch.__version__}.onnx"


def export_onnx(model: torch.nn.Module, shape: tuple[int, int], key: str) -> Path:
    """The ONNX file of ``model`` for (height, width) inputs and any batch size, exported once per
    ``key`` (the checkpoint's hash) and written atomically, so two processes never read half a file."""
    path = onnx_path(shape, key)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    try:
        with warnings.catch_warnings(), atomic_open(path, "wb", durable=False) as f:
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(model.cpu().eval(), (torch.zeros(1, 1, *shape),), f, input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                              dynamo=False)
    except Exception as e:
        raise RuntimeUnavailable(f"ONNX export failed ({type(e).__name__}: {e})") from e
    return path


def openvino_runner(onnx: Path, threads: int, precision: str = "f32") -> Runner:
    try:
        import openvino as ov
    except ImportError as e:
        raise RuntimeUnavailable("the openvino package is not installed") from e
    core = ov.Core()
    # the compiled blob is cached too (OpenVINO's own cache, keyed by the model and the CPU)
    core.set_property({"CACHE_DIR": str(onnx.parent / "openvino")})
    # f32 by default: on CPUs with AVX512-BF16 or AMX OpenVINO would pick BF16, 2.3x faster but with
    # scores up to 6e-3 away from PyTorch's (benchmarks/infer_profile.py), beyond infer's accuracy rule
    compiled = core.compile_model(str(onnx), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                     "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[0], np.float32)

    return run


def onnxruntime_runner(onnx: Path, threads: int) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RuntimeUnavailable("the onnxruntime package is not installed") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    return lambda x: np.asarray(session.run(None, {"x": x})[0], np.float32)


def probe(shape: tuple[int, int], n: int = 4) -> np.ndarray:
    """A fixed batch that looks like spectrograms (smooth bands plus noise, one silent), the same in
    every process, on which a runtime's scores are compared with PyTorch's."""
    rng = np.random.default_rng(0)
    h, w = shape
    bands = np.sin(np.linspace(0, 3 * np.pi, h))[:, None] * np.cos(np.linspace(0, 7 * np.pi, w))[None]
    x = np.clip(0.4 + 0.3 * bands[None] + 0.3 * rng.random((n, h, w)), 0, 1).astype(np.float32)
    x[0] = 0
    return x[:, None]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -80, 80)))


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _identity(name: str, tolerance: float) -> dict[str, object]:
    """What a passed check holds for: the runtime picks its kernels by its version and the CPU."""
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        version = None
    return {"runtime": name, "version": version, "torch": torch.__version__, "cpu": _cpu_name(), "tolerance": tolerance}


def _passed(verdict: Path, identity: dict[str, object]) -> bool:
    try:
        stored = json.loads(verdict.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(stored.get(k) == v for k, v in identity.items())


def build(make_model: Callable[[], torch.nn.Module], checkpoint: Path, shape: tuple[int, int], runtime: str = "auto",
          device: str = "cpu", threads: int | None = None, tolerance: float = TOLERANCE) -> tuple[Runner, str]:
    """The first runtime of :func:`order` that runs the model of ``checkpoint`` (``make_model`` builds
    it) within ``tolerance`` of PyTorch's scores, and its name. Why a check: an exported graph or a
    lower precision the runtime picks on its own (OpenVINO uses BF16 where the CPU has it unless told
    otherwise) must never change labels silently. The model is built only when the check has not
    passed before here (see the module's docstring) or PyTorch runs it."""
    names = order(runtime, device)
    if names == ["torch"]:
        return torch_runner(make_model(), device), "torch"
    threads = threads or torch.get_num_threads()
    key = sha256_file(checkpoint)[:16]  # read once: every runtime tried shares the one export
    onnx = onnx_path(shape, key)
    model: torch.nn.Module | None = None
    for name in names[:-1]:
        make = openvino_runner if name == "openvino" else onnxruntime_runner
        verdict, identity = onnx.with_suffix(f".{name}.json"), _identity(name, tolerance)
        try:
            if onnx.is_file() and _passed(verdict, identity):
                return make(onnx, threads), name
            if model is None:
                model, x = make_model(), probe(shape)
                fallback = torch_runner(model, device)
                want = sigmoid(fallback(x))
            run = make(export_onnx(model, shape, key), threads)
            diff = float(np.abs(sigmoid(run(x)) - want).max())
            if diff > tolerance:
                raise RuntimeUnavailable(f"its scores differ from PyTorch's by {diff:.1e} (> {tolerance:g})")
            with atomic_open(verdict, "w", durable=False, encoding="utf-8") as f:
                json.dump({**identity, "max_abs_diff": diff}, f)
            return run, name
        except RuntimeUnavailable as e:
            why = str(e)
        except Exception as e:  # a runtime's own failure (unsupported operator, bad cache file)
            why = f"{type(e).__name__}: {e}"
        (log.warning if runtime == name else log.info)("%s: runtime %s not used (%s); trying the next", checkpoint.name,
                                                       name, why)
    return (fallback if model is not None else torch_runner(make_model(), device)), "torch"
