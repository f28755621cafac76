"""Model registry: one place that turns a model name into a network.

Names are either a HawkEars-style ``custom_<family>_<n>`` configuration (small models sized for
spectrograms, larger n = larger model) or any timm model name. Every model takes one input channel
(a spectrogram) and is built with ``pretrained=False``: nothing is ever downloaded.

Parameter counts with 10 classes (checked by tests/test_models.py):

=====================  ==========  ========================================
name                   parameters  built from
=====================  ==========  ========================================
custom_hgnet_1         0.83M       timm HighPerfGpuNet (PP-HGNetV2 blocks)
custom_hgnet_2         1.60M       "
custom_hgnet_3         2.44M       "
custom_hgnet_4         3.87M       "
custom_effnet_1        0.77M       timm tinynet_e (EfficientNet family)
custom_effnet_2        1.07M       timm tinynet_d
custom_effnet_3        1.19M       timm tinynet_c
custom_mobilenet_1     0.58M       timm mobilenetv3_small_050
custom_mobilenet_2     1.03M       timm mobilenetv3_small_075
custom_mobilenet_3     1.53M       timm mobilenetv3_small_100
=====================  ==========  ========================================

``embed_head`` is not a spectrogram network: a linear (or one-hidden-layer) head on a pretrained
embedder's vectors (hawk/embed_head.py; 10k parameters for 10 classes on BirdNET's 1024-d vectors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# PP-HGNetV2 stages: (out_chs, mid_chs) per stage, then the head's hidden size.
_HGNET: dict[int, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    1: ((64, 128, 256, 448), (16, 32, 64, 112), 512),
    2: ((64, 160, 320, 640), (16, 40, 80, 160), 896),
    3: ((64, 192, 384, 768), (16, 48, 96, 192), 1280),
    4: ((96, 256, 512, 1024), (24, 64, 128, 256), 1280),
}
_TIMM_ALIASES = {
    "custom_effnet_1": "tinynet_e", "custom_effnet_2": "tinynet_d", "custom_effnet_3": "tinynet_c",
    "custom_mobilenet_1": "mobilenetv3_small_050", "custom_mobilenet_2": "mobilenetv3_small_075",
    "custom_mobilenet_3": "mobilenetv3_small_100",
}


def custom_names() -> list[str]:
    return [f"custom_hgnet_{n}" for n in _HGNET] + list(_TIMM_ALIASES)


def _hgnet(size: int, num_classes: int, drop_rate: float) -> nn.Module:
    from timm.models.hgnet import HighPerfGpuNet

    outs, mids, hidden = _HGNET[size]
    stem = 16
    cfg: dict[str, Any] = {"stem_type": "v2", "stem_chs": [stem, stem]}
    ins = (stem, *outs[:3])
    light = (False, False, True, True)
    kernel = (3, 3, 5, 5)
    blocks = (1, 1, 2, 1)
    for i in range(4):
        cfg[f"stage{i + 1}"] = [ins[i], mids[i], outs[i], blocks[i], i > 0, light[i], kernel[i], 3]
    return HighPerfGpuNet(cfg, in_chans=1, num_classes=num_classes, head_hidden_size=hidden, drop_rate=drop_rate)


def create_model(name: str, num_classes: int, drop_rate: float = 0.0, **options: Any) -> nn.Module:
    """A fresh, randomly initialised network for ``num_classes`` outputs and 1-channel input
    (``embed_head``: vector input, built from ``options`` in_dim, hidden and dropout)."""
    if name == "embed_head":
        from hawk.embed_head import EmbedHead

        return EmbedHead(num_classes, **options)
    if name.startswith("custom_hgnet_"):
        size = int(name.rsplit("_", 1)[1])
        if size not in _HGNET:
            raise ValueError(f"unknown model {name!r}; custom models: {', '.join(custom_names())}")
        return _hgnet(size, num_classes, drop_rate)
    if name.startswith("custom_") and name not in _TIMM_ALIASES:
        raise ValueError(f"unknown model {name!r}; custom models: {', '.join(custom_names())}")
    import timm  # here, not at the top: timm (and the torchvision it loads) takes seconds to import

    timm_name = _TIMM_ALIASES.get(name, name)
    try:
        return timm.create_model(timm_name, pretrained=False, in_chans=1, num_classes=num_classes, drop_rate=drop_rate)
    except RuntimeError as e:  # timm: "Unknown model"
        raise ValueError(f"unknown model {name!r} (neither a custom_* name nor a timm model): {e}") from e


def embed_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled penultimate features (what the classifier layer sees), the checkpoint embedding."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
