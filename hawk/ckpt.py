"""hawk checkpoints: weights plus everything needed to use them, loadable without running code.

A checkpoint is a ``torch.save`` of plain data (tensors, strings, numbers, lists, dicts), so
``torch.load(weights_only=True)`` reads it: opening a checkpoint from someone else cannot execute code.
It carries the model name, the class names and codes in output order, the spectrogram settings the
model expects, and the hashes of the data it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hawk.errors import HawkError
from hawk.fsutil import atomic_open
from hawk.models import create_model

FORMAT = "hawk-ckpt/1"


class CheckpointError(HawkError, ValueError):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")


def save_checkpoint(path: str | Path, model_name: str, model: nn.Module, classes: list[tuple[str, str]],
                    spec_settings: dict[str, Any], data: dict[str, str] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically; ``classes`` are (name, code) pairs in the model's output order."""
    payload = {
        "format": FORMAT, "model_name": model_name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": [{"name": n, "code": c} for n, c in classes],
        "spec_settings": dict(spec_settings), "data": dict(data or {}), "extra": dict(extra or {}),
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents (weights on CPU); a clear error for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(path, f"not a loadable hawk checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(path, f"not a hawk checkpoint (expected format {FORMAT})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """The network with the checkpoint's weights, in eval mode."""
    model = create_model(ckpt["model_name"], len(ckpt["classes"]), **ckpt.get("extra", {}).get("head", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def class_codes(ckpt: dict[str, Any]) -> list[str]:
    return [c["code"] for c in ckpt["classes"]]
