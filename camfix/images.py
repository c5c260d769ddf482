"""Image normalisation and its inverse: a classifier's input from uint8 RGB, and the RGB back for the CRF.

Every caller in camfix, its demo and its examples normalises here, so that the un-normalisation
:func:`camfix.localize` does for the CRF is the exact inverse of what made the model's input.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from ._validation import check_channel_statistics, check_dtype, check_finite, check_tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "denormalize_images", "normalize_images"]

#: ImageNet's per-channel RGB mean on the ``[0, 1]`` scale: what ImageNet-trained classifiers expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: ImageNet's per-channel RGB standard deviation on the ``[0, 1]`` scale.
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(
    images: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Tensor:
    """A classifier's input from RGB images: ``(images / 255 - mean) / std`` per channel.

    Args:
        images: uint8 RGB ``(N, 3, H, W)`` in ``[0, 255]``, any device and memory format.
        mean: three numbers, the per-channel mean on the ``[0, 1]`` scale (ImageNet's by default).
        std: three positive numbers, the per-channel standard deviation on the ``[0, 1]`` scale.

    Returns:
        float32 ``(N, 3, H, W)`` on the device of ``images``, in its memory format (channels_last stays so).
    """
    check_tensor("images", images, 4, shape_hint="(N, 3, H, W)", floating=False)
    check_dtype("images", images, torch.uint8)
    _check_rgb("images", images)
    scale, shift = _statistics(*_check_statistics(mean, std), images.device)
    return images.float().div_(255).sub_(shift).div_(scale)


def denormalize_images(
    images: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Tensor:
    """The inverse of :func:`normalize_images`: uint8 RGB ``round(255 * (images * std + mean))``.

    Values that fall outside ``[0, 255]`` (an input that was not made by :func:`normalize_images` with these
    statistics, e.g. after colour augmentation) saturate at 0 and 255, as any conversion to 8-bit pixels must.

    Args:
        images: ``(N, 3, H, W)`` floating point, finite, normalised with ``mean`` and ``std``.
        mean: the per-channel mean the images were normalised with (ImageNet's by default).
        std: the per-channel standard deviation, positive.

    Returns:
        uint8 ``(N, 3, H, W)`` on the device of ``images``; exact inverse of :func:`normalize_images` for its
        output.
    """
    check_tensor("images", images, 4, shape_hint="(N, 3, H, W)")
    _check_rgb("images", images)
    check_finite("images", images)
    return _denormalize(images, *_check_statistics(mean, std))


def _denormalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """:func:`denormalize_images` of arguments the caller has checked already (:func:`camfix.localize` checks
    ``mean`` and ``std`` before its forward pass, and its images are finite), without checking them again."""
    scale, shift = _statistics(mean, std, images.device)
    return (images.float() * scale + shift).mul_(255).round_().clamp_(0, 255).to(torch.uint8)


def _check_rgb(name: str, images: Tensor) -> None:
    if images.shape[1] != 3:
        raise ValueError(
            f"{name} must be RGB, (N, 3, H, W), got {images.shape[1]} channels (shape {tuple(images.shape)})"
        )


def _check_statistics(mean: object, std: object) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    return check_channel_statistics("mean", mean), check_channel_statistics("std", std, positive=True)


def _statistics(mean: Sequence[float], std: Sequence[float], device: torch.device) -> Tuple[Tensor, Tensor]:
    """``(std, mean)`` as float32 ``(1, 3, 1, 1)`` tensors on ``device``."""
    return (
        torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1),
        torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1),
    )

