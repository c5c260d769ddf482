"""Bad input to ``camfix.localize``: every argument is refused under its own name, before the forward pass.

The promise: a ``ValueError`` or ``TypeError`` whose message starts with (or names) the argument the caller
passed and quotes what was received, raised before the model runs (a model that counts its forward passes shows
it), with every hook removed and the model's mode untouched.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import camfix

from nets import CountingResNet, all_hooks


IMAGES = torch.randn(2, 3, 32, 32)

BAD_ARGUMENTS = [
    # (keyword arguments, error type, the name the message must start with or contain)
    ({"classifier": torch.randn(5)}, ValueError, "classifier must have shape (K, C)"),
    ({"classifier": torch.randn(5, 8).int()}, TypeError, "classifier must be a floating point"),
    ({"classifier": torch.full((5, 8), math.nan)}, ValueError, "classifier must be finite"),
    ({"classifier": torch.randn(5, 8, 3, 3)}, ValueError, "classifier must have shape (K, C, 1, 1)"),
    ({"classifier": "fc"}, TypeError, "classifier must be an nn.Linear"),
    ({"classifier": nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 5))}, ValueError,
     "no class activation map: classifier is Linear -> ReLU -> Linear"),
    ({"pool_layer": "avgpool"}, TypeError, "pool_layer must be the nn.Module"),
    ({"pool_layer": nn.AdaptiveAvgPool2d(1)}, ValueError, "pool_layer (AdaptiveAvgPool2d) is not a submodule"),
    ({"feature_layer": 4}, TypeError, "feature_layer must be the nn.Module"),
    ({"theta_loc": 1.5}, ValueError, "theta_loc"),
    ({"theta_loc": "0.3"}, TypeError, "theta_loc"),
    ({"pct": -1}, ValueError, "pct"),
    ({"pct": math.nan}, ValueError, "pct"),
    ({"interpolation": "nearest"}, ValueError, "interpolation must be one of"),
    ({"interpolation": ["bicubic"]}, ValueError, "interpolation must be one of"),
    ({"clamp_negative": "yes"}, TypeError, "clamp_negative must be a bool"),
    ({"clamp_negative": 1}, TypeError, "clamp_negative must be a bool"),
    ({"crf": "no"}, TypeError, "crf must be a bool"),
    ({"image_size": (0, 32)}, ValueError, "image_size"),
    ({"image_size": 32.5}, ValueError, "image_size"),
    ({"mean": "abc"}, TypeError, "mean must be a sequence of 3 numbers"),
    ({"mean": (0.5, 0.5)}, TypeError, "mean must be a sequence of 3 numbers"),
    ({"mean": (math.nan, 0.5, 0.5)}, ValueError, "mean[0]"),
    ({"std": "abc"}, TypeError, "std must be a sequence of 3 numbers"),
    ({"std": (0.2, 0.0, 0.2)}, ValueError, "std[1]"),
    ({"std": (0.2, 0.2, math.inf)}, ValueError, "std[2]"),
    ({"crf_workers": 0}, ValueError, "crf_workers set the dense CRF, which runs only with crf=True"),
    ({"crf_workers": 1.5}, ValueError, "crf_workers set the dense CRF"),
    ({"crf_threshold": 0.3, "crf_images": IMAGES}, ValueError, "crf_images, crf_threshold set the dense CRF"),
    ({"crf_alpha": 4.0}, ValueError, "crf_alpha set the dense CRF"),
    ({"crf_params": object()}, ValueError, "crf_params set the dense CRF"),
    ({"labels": [0, 9]}, ValueError, "labels"),
    ({"labels": [0]}, ValueError, "labels"),
    ({"crf": True, "crf_images": torch.zeros(2, 3, 32, 32)}, TypeError, "crf_images"),
    ({"crf": True, "crf_images": torch.zeros(2, 3, 16, 16, dtype=torch.uint8)}, ValueError,
     "crf_images must be uint8 RGB of shape (2, 3, 32, 32)"),
    ({"crf": True, "crf_images": torch.zeros(2, 1, 32, 32, dtype=torch.uint8)}, ValueError, "crf_images"),
    ({"crf": True, "crf_images": [[0]]}, TypeError, "crf_images"),
    ({"crf": True, "crf_params": {"iterations": 5}}, TypeError, "crf_params must be a camfix.crf.DenseCRFParams"),
    ({"crf": True, "crf_workers": 0}, ValueError, "crf_workers"),
]


@pytest.mark.parametrize("kwargs, error, name", BAD_ARGUMENTS)
def test_refused_by_name_before_the_forward_pass(kwargs: Dict[str, Any], error: type, name: str) -> None:
    model = CountingResNet().train()
    with pytest.raises(error) as raised:
        camfix.localize(model, IMAGES, **kwargs)
    assert name in str(raised.value)
    assert model.calls == 0
    assert model.training and all(m.training for m in model.modules())
    assert all_hooks(model) == 0


def test_grayscale_images_need_crf_images() -> None:
    model = CountingResNet()
    model.conv1 = nn.Conv2d(1, model.conv1.out_channels, 7, 2, 3, bias=False)
    with pytest.raises(ValueError, match="images must have 3 channels .* or pass crf_images="):
        camfix.localize(model, torch.randn(2, 1, 32, 32), crf=True)
    assert model.calls == 0


@given(
    st.one_of(
        st.text(max_size=3),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
        st.none(),
        st.integers(),
    )
)
def test_any_bad_mean_or_std_is_named(value: object) -> None:
    """Anything but three finite numbers (std: positive) is refused under its name, before the forward pass."""
    model = CountingResNet()
    for name in ("mean", "std"):
        good = (
            isinstance(value, list)
            and len(value) == 3
            and all(math.isfinite(v) and (name == "mean" or v > 0) for v in value)
        )
        if good:
            continue
        with pytest.raises((TypeError, ValueError)) as raised:
            camfix.localize(model, IMAGES, **{name: value})
        assert str(raised.value).startswith(name)
    assert model.calls == 0


def test_nan_mean_no_longer_refines_a_black_image() -> None:
    """The issue's example: mean=(nan, ...) with the CRF was accepted and refined against a black image."""
    with pytest.raises(ValueError, match=r"mean\[0\]"):
        camfix.localize(CountingResNet(), IMAGES, crf=True, mean=(math.nan, 0.456, 0.406))
