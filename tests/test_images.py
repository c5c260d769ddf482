"""camfix.images: normalisation and its inverse against float64 references written from their definitions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import camfix
from camfix import denormalize_images, normalize_images

MEAN, STD = (0.5, 0.25, 0.125), (0.2, 0.3, 0.4)


def per_element(images: torch.Tensor, dtype: torch.dtype, formula) -> torch.Tensor:
    """``formula(value, channel)`` for every element of ``(N, 3, H, W)``, in Python floats, one at a time."""
    out = torch.empty(images.shape, dtype=dtype)
    for n, c, y, x in itertools.product(*(range(size) for size in images.shape)):
        out[n, c, y, x] = formula(float(images[n, c, y, x]), c)
    return out


def reference_normalize(images: torch.Tensor, mean=camfix.IMAGENET_MEAN, std=camfix.IMAGENET_STD) -> torch.Tensor:
    return per_element(images, torch.float64, lambda value, c: (value / 255.0 - mean[c]) / std[c])


def reference_denormalize(images: torch.Tensor, mean=camfix.IMAGENET_MEAN, std=camfix.IMAGENET_STD) -> torch.Tensor:
    return per_element(images, torch.uint8, lambda value, c: min(255, max(0, round(255.0 * (value * std[c] + mean[c])))))


@pytest.mark.parametrize("statistics", [{}, {"mean": MEAN, "std": STD}])
def test_normalize_against_float64_reference(statistics: dict) -> None:
    images = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8)
    result = normalize_images(images, **statistics)
    assert result.dtype == torch.float32 and result.shape == images.shape
    torch.testing.assert_close(result.double(), reference_normalize(images, **statistics), rtol=0, atol=2e-6)


def test_every_pixel_value_round_trips_exactly() -> None:
    """denormalize_images is the exact inverse of normalize_images on all 256 levels of every channel."""
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16).contiguous()
    for statistics in ({}, {"mean": MEAN, "std": STD}):
        assert torch.equal(denormalize_images(normalize_images(levels, **statistics), **statistics), levels)


def test_denormalize_against_float64_reference_and_saturates_outside_the_pixel_range() -> None:
    images = torch.randn(2, 3, 4, 5) * 3  # far outside the range of normalised pixels: saturates at 0 and 255
    result = denormalize_images(images)
    assert result.dtype == torch.uint8
    expected = reference_denormalize(images)
    # round(x.5) may go either way between the float32 and float64 computations: at most one level apart.
    assert int((result.int() - expected.int()).abs().max()) <= 1
    assert int(result.min()) == 0 and int(result.max()) == 255


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_denormalize_other_float_dtypes(dtype: torch.dtype) -> None:
    levels = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8)
    result = denormalize_images(normalize_images(levels).to(dtype))
    tolerance = {torch.float16: 2, torch.bfloat16: 4, torch.float64: 0}[dtype]  # the dtype's own rounding
    assert int((result.int() - levels.int()).abs().max()) <= tolerance


def test_memory_format_and_non_contiguous_input() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 6), dtype=torch.uint8)
    last = images.contiguous(memory_format=torch.channels_last)
    result = normalize_images(last)
    assert result.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(result, normalize_images(images))
    strided = images.transpose(2, 3)
    assert torch.equal(normalize_images(strided), normalize_images(strided.contiguous()))
    assert torch.equal(denormalize_images(normalize_images(strided)), strided)


def test_batch_of_one_and_one_pixel() -> None:
    image = torch.tensor([[[[0]], [[128]], [[255]]]], dtype=torch.uint8)
    assert torch.equal(denormalize_images(normalize_images(image)), image)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 6), dtype=torch.uint8)
    result = normalize_images(images.cuda())
    assert result.is_cuda
    torch.testing.assert_close(result.cpu(), normalize_images(images))
    assert torch.equal(denormalize_images(result).cpu(), images)


UINT8 = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: normalize_images(UINT8.float()), TypeError, "images must have dtype torch.uint8"),
        (lambda: normalize_images(UINT8[0]), ValueError, "images must have shape (N, 3, H, W)"),
        (lambda: normalize_images(UINT8[:, :1]), ValueError, "images must be RGB"),
        (lambda: normalize_images(UINT8.numpy()), TypeError, "images must be a torch.Tensor"),
        (lambda: normalize_images(UINT8, mean=(0.5, 0.5)), TypeError, "mean must be a sequence of 3 numbers"),
        (lambda: normalize_images(UINT8, std=(0.5, 0.0, 0.5)), ValueError, "std[1] must be in (0, inf)"),
        (lambda: normalize_images(UINT8, mean=(0.5, -math.inf, 0.5)), ValueError, "mean[1] must be in (-inf, inf)"),
        (lambda: normalize_images(UINT8, mean="abc"), TypeError, "mean must be a sequence of 3 numbers"),
        (lambda: denormalize_images(UINT8), TypeError, "images must be a floating point tensor"),
        (lambda: denormalize_images(torch.full((1, 3, 2, 2), math.nan)), ValueError, "images must be finite"),
        (lambda: denormalize_images(torch.zeros(1, 4, 2, 2)), ValueError, "images must be RGB"),
        (lambda: denormalize_images(torch.zeros(1, 3, 2, 2), std=(1, 1, math.nan)), ValueError, "std[2]"),
    ],
)
def test_bad_input_is_named(call, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)
