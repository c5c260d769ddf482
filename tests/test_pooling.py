"""TAP (camfix.tap, camfix.TAPool) against a float64 loop reference, its gradient, dtypes, layouts, and the
drop-in swap into torchvision-style and timm-style models (forward pass and checkpoints)."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nets import TimmStyleNet, TorchvisionResNet
from torch import nn

from camfix import TAPool, tap


def reference_tap(x: torch.Tensor, theta: float) -> np.ndarray:
    """TAP from its definition, in float64 loops: the mean of the elements strictly above theta * max, else 0."""
    values = x.detach().cpu().double().numpy()
    batch, channels, height, width = values.shape
    out = np.zeros((batch, channels))
    for n in range(batch):
        for c in range(channels):
            elements = [values[n, c, i, j] for i in range(height) for j in range(width)]
            tau = theta * max(elements)
            kept = [v for v in elements if v > tau]
            out[n, c] = sum(kept) / len(kept) if kept else 0.0
    return out


def reference_tap_grad(x: torch.Tensor, theta: float, grad_out: torch.Tensor) -> np.ndarray:
    """d(sum(grad_out * tap(x)))/dx with the mask and count held constant: grad / count on kept elements."""
    values = x.detach().cpu().double().numpy()
    upstream = grad_out.detach().cpu().double().numpy().reshape(values.shape[:2])
    grad = np.zeros_like(values)
    for n in range(values.shape[0]):
        for c in range(values.shape[1]):
            tau = theta * values[n, c].max()
            kept = values[n, c] > tau
            if kept.any():
                grad[n, c][kept] = upstream[n, c] / kept.sum()
    return grad


def away_from_threshold(shape: tuple, theta: float, generator: torch.Generator) -> torch.Tensor:
    """float64 features whose elements are distinct and no closer than 1e-3 to theta * max of their channel.

    Each channel holds a random permutation of a grid of distinct values (some negative) times a random positive
    scale, so every kink of TAP (an element crossing tau, or a tie for the maximum) is far from the input and
    finite differences see the same mask as the analytical gradient.
    """
    batch, channels, height, width = shape
    size = height * width
    x = torch.empty(shape, dtype=torch.float64)
    for n in range(batch):
        for c in range(channels):
            grid = (torch.randperm(size, generator=generator).double() - size / 4 - 0.5) / size
            scale = 0.5 + 1.5 * torch.rand((), generator=generator, dtype=torch.float64)
            x[n, c] = (grid * scale).reshape(height, width)
    tau = theta * x.amax(dim=(2, 3), keepdim=True)
    assert float((x - tau).abs().min()) > 1e-3
    return x


feature_maps = st.tuples(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)
).flatmap(lambda shape: arrays(np.float64, shape, elements=st.floats(-10, 10, allow_subnormal=False)))
thetas = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.5]), st.floats(0.0, 1.0, exclude_max=True))


# --------------------------------------------------------------------------------------------------- the formula


@given(x=feature_maps, theta=thetas)
def test_tap_matches_reference(x: np.ndarray, theta: float) -> None:
    features = torch.from_numpy(x)
    np.testing.assert_allclose(tap(features, theta, flatten=True).numpy(), reference_tap(features, theta),
                               rtol=1e-12, atol=1e-12)


@given(x=feature_maps, theta=thetas)
def test_tap_is_relative_to_the_channel_max(x: np.ndarray, theta: float) -> None:
    # Doubling is exact in binary floating point, so a threshold relative to the max doubles with the input and
    # keeps exactly the same elements.
    features = torch.from_numpy(x)
    assert torch.equal(tap(2 * features, theta), 2 * tap(features, theta))


@given(x=feature_maps, theta=thetas, seed=st.integers(0, 2**16))
def test_tap_ignores_spatial_order(x: np.ndarray, theta: float, seed: int) -> None:
    features = torch.from_numpy(x)
    n, c, h, w = features.shape
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    shuffled = features.flatten(2)[:, :, order].reshape(n, c, h, w)
    torch.testing.assert_close(tap(shuffled, theta), tap(features, theta), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("theta", [0.0, 0.05, 0.1, 0.9])
def test_tap_float32_random(theta: float) -> None:
    x = torch.randn(3, 4, 6, 5)
    np.testing.assert_allclose(tap(x, theta).flatten(1).numpy(), reference_tap(x, theta), rtol=1e-5, atol=1e-6)


def test_tap_zero_theta_averages_positive_elements_not_gap() -> None:
    x = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert tap(x, 0.0).item() == 1.5  # mean of 1 and 2; 0 is not > 0
    assert x.mean().item() == 0.5  # GAP


def test_tap_example_from_the_paper_motivation() -> None:
    # A channel that fires on a small region: GAP dilutes it by the region's size, TAP does not.
    small = torch.zeros(1, 1, 8, 8)
    small[..., :2, :2] = 1.0
    large = torch.zeros(1, 1, 8, 8)
    large[..., :6, :6] = 1.0
    assert tap(small, 0.05).item() == tap(large, 0.05).item() == 1.0
    assert small.mean().item() < large.mean().item()


# ------------------------------------------------------------------------------------------------------ edge cases


def test_tap_all_zero_channel_pools_to_zero_not_nan() -> None:
    x = torch.randn(2, 3, 4, 4)
    x[1, 2] = 0.0
    out = tap(x, 0.05, flatten=True)
    assert out[1, 2].item() == 0.0
    assert torch.isfinite(out).all()


def test_tap_all_negative_channel_pools_to_zero() -> None:
    # tau = theta * max is above a negative max, so no element is kept (definition: sum over an empty set, 0).
    x = -torch.rand(1, 1, 3, 3) - 0.1
    assert tap(x, 0.05).item() == 0.0
    assert tap(x, 0.0).item() == 0.0


@pytest.mark.parametrize("theta", [0.0, 0.05, 0.99])
def test_tap_constant_channel(theta: float) -> None:
    assert tap(torch.full((1, 1, 3, 4), 0.75), theta).item() == 0.75
    assert tap(torch.full((1, 1, 3, 4), -0.75), theta).item() == 0.0


@pytest.mark.parametrize("value, expected", [(2.5, 2.5), (0.0, 0.0), (-1.0, 0.0)])
def test_tap_1x1_map(value: float, expected: float) -> None:
    assert tap(torch.tensor([[[[value]]]]), 0.05).item() == expected


def test_tap_batch_of_one_and_empty_batch() -> None:
    x = torch.randn(1, 3, 4, 4)
    np.testing.assert_allclose(tap(x, 0.1, flatten=True).numpy(), reference_tap(x, 0.1), rtol=1e-5, atol=1e-6)
    assert tap(torch.zeros(0, 3, 4, 4)).shape == (0, 3, 1, 1)
    assert tap(torch.zeros(0, 3, 4, 4), flatten=True).shape == (0, 3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_tap_ties_at_the_threshold_are_excluded(dtype: torch.dtype) -> None:
    # max 1, theta 0.5: tau = 0.5 exactly in every dtype; the two elements equal to tau are not kept.
    x = torch.tensor([[[[1.0, 0.5], [0.5, 0.25]]], [[[2.0, 1.0], [1.0, 1.5]]]], dtype=dtype)
    assert tap(x, 0.5, flatten=True).tolist() == [[1.0], [1.75]]


def test_tap_output_shapes() -> None:
    x = torch.randn(2, 5, 3, 4)
    assert tap(x).shape == (2, 5, 1, 1)
    assert tap(x, flatten=True).shape == (2, 5)
    assert TAPool()(x).shape == (2, 5, 1, 1)
    assert TAPool(flatten=True)(x).shape == (2, 5)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2), (torch.float64, 1e-12)])
def test_tap_dtypes(dtype: torch.dtype, tol: float) -> None:
    x = (torch.randn(2, 3, 5, 5) * 4).to(dtype)
    out = tap(x, 0.1)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.flatten(1).double().numpy(), reference_tap(x, 0.1), rtol=tol, atol=tol)


def test_tap_half_precision_accumulates_in_float32() -> None:
    # 4096 elements near 8: a float16 running sum would overflow past 65504 or lose the small differences.
    x = (8 + torch.rand(1, 1, 64, 64)).half()
    np.testing.assert_allclose(tap(x, 0.05).double().item(), reference_tap(x, 0.05).item(), rtol=1e-3)


def test_tap_channels_last_and_non_contiguous() -> None:
    x = torch.randn(2, 3, 6, 5)
    expected = tap(x, 0.1)
    channels_last = x.to(memory_format=torch.channels_last)
    torch.testing.assert_close(tap(channels_last, 0.1), expected)
    transposed = torch.randn(2, 3, 5, 6).transpose(2, 3)
    assert not transposed.is_contiguous()
    torch.testing.assert_close(tap(transposed, 0.1), tap(transposed.contiguous(), 0.1))
    strided = torch.randn(2, 6, 6, 10)[:, ::2, :, ::2]
    torch.testing.assert_close(tap(strided, 0.1), tap(strided.contiguous(), 0.1))


def test_tap_non_finite_channels_propagate_like_gap() -> None:
    x = torch.rand(1, 4, 3, 3) + 0.1
    x[0, 0, 1, 1] = float("nan")
    x[0, 1, 0, 2] = float("inf")
    x[0, 2, 2, 0] = float("-inf")  # an element far below tau: simply not kept
    out = tap(x, 0.05, flatten=True)[0]
    assert math.isnan(out[0].item())
    assert out[1].item() == float("inf")
    finite_part = x[0, 2][torch.isfinite(x[0, 2])]
    assert out[2].item() == pytest.approx(finite_part.mean().item(), rel=1e-6)
    assert out[3].item() == pytest.approx(reference_tap(x[:, 3:], 0.05).item(), rel=1e-6)


def test_tap_under_cpu_autocast_bfloat16() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    images = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = conv(images)
        pooled = tap(features, 0.05)
    assert features.dtype == pooled.dtype == torch.bfloat16
    np.testing.assert_allclose(pooled.detach().flatten(1).double().numpy(), reference_tap(features, 0.05), rtol=1e-2,
                               atol=1e-2)
    pooled.float().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


# -------------------------------------------------------------------------------------------------------- gradient


@pytest.mark.parametrize("theta, flatten", [(0.05, False), (0.3, True), (0.0, False)])
def test_tap_gradcheck(theta: float, flatten: bool) -> None:
    x = away_from_threshold((2, 3, 3, 4), theta, torch.Generator().manual_seed(1)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: tap(t, theta, flatten), (x,))


def test_tap_gradient_goes_to_kept_elements_as_grad_over_count() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    x[0, 1] = 0.0  # nothing kept: no gradient at all, and no NaN
    x[1, 2, 3, 4] = 10.0  # the channel's maximum, so tau = 2.0 at theta 0.2 ...
    x[1, 2, 0, :] = 2.0  # ... and the elements tied at tau get no gradient
    x.requires_grad_()
    grad_out = torch.randn(2, 3, 1, 1, dtype=torch.float64)
    tap(x, 0.2).backward(grad_out)
    np.testing.assert_allclose(x.grad.numpy(), reference_tap_grad(x, 0.2, grad_out), rtol=1e-12, atol=0)
    assert (x.grad[0, 1] == 0).all() and (x.grad[1, 2, 0] == 0).all()


def test_tap_gradient_in_half_precision() -> None:
    x = torch.randn(1, 2, 4, 4).half().requires_grad_()
    tap(x, 0.1).sum().backward()
    assert x.grad.dtype == torch.float16
    np.testing.assert_allclose(x.grad.double().numpy(), reference_tap_grad(x, 0.1, torch.ones(1, 2)), rtol=1e-3)


# --------------------------------------------------------------------------------------------- module and drop-in


def test_tapool_has_no_state_and_a_repr() -> None:
    pool = TAPool(0.1, flatten=True)
    assert list(pool.parameters()) == [] and list(pool.buffers()) == []
    assert pool.state_dict() == {}
    assert repr(pool) == "TAPool(theta=0.1, flatten=True)"
    assert repr(TAPool()) == "TAPool(theta=0.05, flatten=False)"  # paper default theta_tap


def test_tapool_survives_deepcopy_and_pickling() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), TAPool(0.2, flatten=True))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(restored(x), model(x))
    torch.testing.assert_close(copy.deepcopy(model)(x), model(x))
    assert restored[1].theta == 0.2 and restored[1].flatten is True


def _saved(state_dict: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return buffer


def test_drop_in_torchvision_resnet() -> None:
    images = torch.randn(2, 3, 96, 128)
    gap_model = TorchvisionResNet().eval()
    checkpoint = _saved(gap_model.state_dict())  # "pretrained" weights, saved with GAP

    tap_model = TorchvisionResNet().eval()
    tap_model.avgpool = TAPool(0.05)
    tap_model.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
    assert tap_model.state_dict().keys() == gap_model.state_dict().keys()

    with torch.no_grad():
        logits = tap_model(images)
        features = gap_model.features(images)
        expected = reference_tap(features, 0.05) @ gap_model.fc.weight.double().numpy().T
        expected += gap_model.fc.bias.double().numpy()
    assert logits.shape == (2, 5)
    np.testing.assert_allclose(logits.double().numpy(), expected, rtol=1e-4, atol=1e-5)

    # and back: a checkpoint saved from the TAP model loads into a GAP model
    gap_again = TorchvisionResNet().eval()
    gap_again.load_state_dict(torch.load(_saved(tap_model.state_dict()), weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(gap_again(images), gap_model(images))


def test_drop_in_torchvision_resnet_trains() -> None:
    model = TorchvisionResNet()
    model.avgpool = TAPool(0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.conv1.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 3]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(model.conv1.weight).all() and not torch.equal(model.conv1.weight, before)


def test_drop_in_timm_style_model() -> None:
    images = torch.randn(2, 3, 16, 20)
    model = TimmStyleNet().eval()
    checkpoint = _saved(model.state_dict())
    model.global_pool = TAPool(0.05, flatten=True)
    model.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
    with torch.no_grad():
        features = model.forward_features(images)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model(images)
    assert pooled.shape == (2, 12) and logits.shape == (2, 4)
    np.testing.assert_allclose(pooled.double().numpy(), reference_tap(features, 0.05), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, model.head(pooled))


def test_drop_in_camfix_models_seresnet_small() -> None:
    models = pytest.importorskip("camfix.models")
    images = torch.randn(1, 3, 32, 32)
    model = models.seresnet_small(num_classes=3).eval()
    checkpoint = _saved(model.state_dict())
    model.global_pool = TAPool(0.05, flatten=True)
    model.load_state_dict(torch.load(checkpoint, weights_only=True), strict=True)
    with torch.no_grad():
        features = model.forward_features(images)
        logits = model(images)
    weight, bias = model.fc.weight.detach().double().numpy(), model.fc.bias.detach().double().numpy()
    expected = reference_tap(features, 0.05) @ weight.T + bias
    np.testing.assert_allclose(logits.double().numpy(), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("theta", [1.0, -0.01, 1.5, float("nan")])
def test_bad_theta_value(theta: float) -> None:
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\)"):
        tap(torch.rand(1, 1, 2, 2), theta)
    with pytest.raises(ValueError, match="theta"):
        TAPool(theta)


@pytest.mark.parametrize("theta", ["0.1", True, None, torch.tensor(0.1)])
def test_bad_theta_type(theta: object) -> None:
    with pytest.raises(TypeError, match="theta must be a real number"):
        tap(torch.rand(1, 1, 2, 2), theta)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="theta"):
        TAPool(theta)  # type: ignore[arg-type]


def test_bad_flatten_type() -> None:
    with pytest.raises(TypeError, match="flatten must be a bool"):
        TAPool(0.05, flatten=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "x, error, pattern",
    [
        (torch.rand(2, 3, 4), ValueError, r"x must have shape \(N, C, H, W\)"),
        (torch.rand(1, 2, 3, 4, 5), ValueError, r"x must have shape \(N, C, H, W\)"),
        (torch.ones(1, 2, 3, 3, dtype=torch.int64), TypeError, "x must be a floating point tensor"),
        (torch.zeros(1, 2, 0, 3), ValueError, "x must have a non-empty spatial size"),
        (np.ones((1, 2, 3, 3)), TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_features(x: object, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        tap(x)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_tap_cuda_matches_cpu(dtype: torch.dtype) -> None:
    x = torch.randn(2, 8, 7, 7).to(dtype)
    x[0, 0] = 0.0
    out = tap(x.cuda(), 0.05)
    assert out.device.type == "cuda" and out.dtype == dtype
    torch.testing.assert_close(out.cpu(), tap(x, 0.05))


@pytest.mark.cuda
def test_tap_cuda_autocast_float16_and_gradient() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1).cuda()
    images = torch.randn(2, 3, 8, 8, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        features = conv(images)
        pooled = tap(features, 0.05)
    assert features.dtype == pooled.dtype == torch.float16
    np.testing.assert_allclose(pooled.detach().flatten(1).double().cpu().numpy(), reference_tap(features, 0.05),
                               rtol=2e-3, atol=2e-3)
    pooled.float().sum().backward()
    assert torch.isfinite(conv.weight.grad).all()


@pytest.mark.cuda
def test_drop_in_torchvision_resnet_cuda() -> None:
    model = TorchvisionResNet().eval()
    images = torch.randn(2, 3, 64, 64)
    model.avgpool = TAPool(0.05)
    with torch.no_grad():
        expected = model(images)
        # cuDNN may run the convolutions in TF32 (10-bit mantissa) by default: a loose tolerance.
        torch.testing.assert_close(model.cuda()(images.cuda()).cpu(), expected, rtol=1e-2, atol=1e-2)
