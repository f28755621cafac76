"""Inference runtimes (hawk/runtime.py): exported models score as PyTorch does, and a runtime that is
missing or wrong gives way to the next one instead of changing labels."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest
import torch

from hawk import runtime
from hawk.ckpt import save_checkpoint
from hawk.infer import Ensemble
from hawk.models import create_model
from hawk.spectrogram import SpecSettings

CLASSES = [("Alpha", "AAAA"), ("Beta", "BBBB"), ("Gamma", "CCCC")]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(3)
    model = create_model("custom_hgnet_2", len(CLASSES))
    with torch.no_grad():  # weights far from zero, so outputs differ between inputs and runtimes' errors show
        for p in model.parameters():
            p.mul_(3.0)
    path = tmp_path_factory.mktemp("rt") / "m.ckpt"
    save_checkpoint(path, "custom_hgnet_2", model, CLASSES, SpecSettings().to_dict())
    return path


def spectrograms(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.random((n, 192, 384)) ** 3 * 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_an_exported_model_scores_as_pytorch_does(ckpt, name):
    x = spectrograms()
    want = Ensemble.load(ckpt, "cpu", "torch").scores(x)
    ens = Ensemble.load(ckpt, "cpu", name)
    assert ens.runtimes == [name]
    got = ens.scores(x, batch_size=4)  # a batch size other than the export's
    assert np.abs(got - want).max() <= runtime.TOLERANCE
    assert want.std() > 1e-3  # the scores vary, so equality says something


def test_auto_picks_the_first_runtime_that_loads_and_the_export_is_cached(ckpt):
    ens = Ensemble.load(ckpt, "cpu")
    assert ens.runtimes == ["openvino"]
    exported = sorted(runtime.cache_dir().glob("*.onnx"))
    assert exported and all(p.stat().st_size > 1000 for p in exported)
    stamp = [p.stat().st_mtime_ns for p in exported]
    Ensemble.load(ckpt, "cpu")
    assert [p.stat().st_mtime_ns for p in sorted(runtime.cache_dir().glob("*.onnx"))] == stamp  # not exported again


def test_a_missing_runtime_falls_back_to_the_next(ckpt, monkeypatch, caplog):
    real = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name.split(".")[0] in ("openvino", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    x = spectrograms(3)
    with caplog.at_level(logging.WARNING, logger="hawk.runtime"):
        ens = Ensemble.load(ckpt, "cpu", "openvino")
    assert ens.runtimes == ["torch"]
    assert "openvino package is not installed" in caplog.text  # asked for by name: said out loud
    monkeypatch.setattr(builtins, "__import__", real)
    assert np.abs(ens.scores(x) - Ensemble.load(ckpt, "cpu", "torch").scores(x)).max() == 0


def test_a_passed_check_is_kept_so_a_later_load_builds_no_pytorch_model(ckpt, monkeypatch):
    import hawk.infer

    x = spectrograms(3)
    want = Ensemble.load(ckpt, "cpu", "openvino").scores(x)  # checked here, or in an earlier test
    verdicts = sorted(runtime.cache_dir().glob("*.openvino.json"))
    assert verdicts
    real, built = hawk.infer.model_from_checkpoint, []
    monkeypatch.setattr(hawk.infer, "model_from_checkpoint", lambda c: built.append(1) or real(c))
    ens = Ensemble.load(ckpt, "cpu", "openvino")
    assert ens.runtimes == ["openvino"] and built == []  # neither timm nor the network was loaded
    assert np.array_equal(ens.scores(x), want)
    for v in verdicts:  # another OpenVINO version (or CPU) picks other kernels: the check is made again
        v.write_text(v.read_text().replace('"version": "', '"version": "0.0-'))
    assert Ensemble.load(ckpt, "cpu", "openvino").runtimes == ["openvino"] and built == [1]


def test_a_runtime_whose_scores_differ_is_not_used(ckpt, monkeypatch, caplog):
    for v in runtime.cache_dir().glob("*.json"):  # checks passed in earlier tests (the runner is changed below)
        v.unlink()
    real = runtime.onnxruntime_runner
    monkeypatch.setattr(runtime, "onnxruntime_runner", lambda onnx, threads: (lambda x: real(onnx, threads)(x) + 0.1))
    with caplog.at_level(logging.WARNING, logger="hawk.runtime"):
        ens = Ensemble.load(ckpt, "cpu", "onnxruntime")
    assert ens.runtimes == ["torch"]
    assert "differ from PyTorch's" in caplog.text


def test_a_runtime_on_a_gpu_is_refused_by_name():
    with pytest.raises(ValueError, match="CPU only"):
        runtime.order("openvino", "cuda")
    assert runtime.order("auto", "cuda") == ["torch"]
