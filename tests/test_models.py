"""The model registry: documented parameter counts, one input channel, no downloads."""

import re

import pytest
import torch

from hawk import models
from hawk.models import count_parameters, create_model, custom_names, embed_features

def test_every_custom_model_is_documented_with_its_size():
    doc = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(custom_\w+)\s+([\d.]+)M", models.__doc__, re.M)}
    assert set(doc) == set(custom_names())
    for name, millions in doc.items():
        n = count_parameters(create_model(name, 10)) / 1e6
        assert abs(n - millions) < 0.01, (name, n, millions)
    hgnet = [doc[f"custom_hgnet_{i}"] for i in range(1, 5)]
    assert hgnet == sorted(hgnet) and hgnet[0] < 0.9 and 3.5 < hgnet[-1] < 4.5 and abs(doc["custom_hgnet_2"] - 1.6) < 0.1

@pytest.mark.parametrize("name", ["custom_hgnet_1", "custom_effnet_1", "custom_mobilenet_1", "resnet10t"])
def test_models_take_one_channel_and_embed(name):
    m = create_model(name, 4).eval()
    x = torch.rand(2, 1, 192, 384)
    with torch.no_grad():
        assert m(x).shape == (2, 4)
        assert embed_features(m, x).ndim == 2

def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="custom_hgnet_9"):
        create_model("custom_hgnet_9", 3)
    with pytest.raises(ValueError, match="not_a_model"):
        create_model("not_a_model", 3)
