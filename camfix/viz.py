"""Pictures: maps overlaid on images, boxes, grids, written as PNG with OpenCV (no GUI backend needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from ._validation import check_finite, check_tensor

__all__ = ["to_rgb_uint8", "overlay", "draw_boxes", "image_grid", "save_image"]

ImageLike = Union[np.ndarray, Tensor]
Color = Tuple[int, int, int]
PREDICTED_COLOR: Color = (0, 255, 0)
GROUND_TRUTH_COLOR: Color = (255, 0, 0)


def to_rgb_uint8(image: ImageLike) -> np.ndarray:
    """An RGB image as a uint8 numpy array ``(H, W, 3)``.

    Args:
        image: numpy ``(H, W, 3)`` or tensor ``(3, H, W)``; uint8 in ``[0, 255]`` or floating in ``[0, 1]``.
    """
    if isinstance(image, Tensor):
        check_tensor("image", image, 3, shape_hint="(3, H, W)", floating=False)
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"image must be RGB, numpy (H, W, 3) or tensor (3, H, W), got {shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be uint8 or floating point, got dtype {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError(
            f"a floating point image must be finite and in [0, 1], got range [{image.min():g}, {image.max():g}]"
        )
    return np.ascontiguousarray(np.round(image * 255).astype(np.uint8))


def overlay(image: ImageLike, saliency: ImageLike, alpha: float = 0.5, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a colour-mapped saliency map over an image.

    Args:
        image: RGB image, see :func:`to_rgb_uint8`.
        saliency: ``(H, W)`` map in ``[0, 1]`` (tensor or numpy), same size as the image.
        alpha: weight of the map in ``[0, 1]``.
        colormap: an OpenCV colormap constant (``cv2.COLORMAP_JET`` by default).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    rgb = to_rgb_uint8(image)
    heat = torch.as_tensor(saliency).detach().cpu()
    check_tensor("saliency", heat, 2, shape_hint="(H, W)")
    check_finite("saliency", heat)
    if tuple(heat.shape) != rgb.shape[:2]:
        raise ValueError(f"saliency must have the image's size {rgb.shape[:2]}, got {tuple(heat.shape)}")
    if float(heat.min()) < 0 or float(heat.max()) > 1:
        raise ValueError(f"saliency must be in [0, 1], got [{float(heat.min()):g}, {float(heat.max()):g}]")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    colored = cv2.applyColorMap(np.round(heat.numpy() * 255).astype(np.uint8), colormap)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colored, alpha, rgb, 1 - alpha, 0)


def draw_boxes(
    image: ImageLike, boxes: Union[Tensor, np.ndarray, Sequence[Sequence[int]]], color: Color = PREDICTED_COLOR,
    thickness: int = 2,
) -> np.ndarray:
    """Draw inclusive ``(x0, y0, x1, y1)`` boxes; the sentinel ``(-1, -1, -1, -1)`` (no box) is skipped.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB array.
    """
    canvas = to_rgb_uint8(image).copy()
    box_array = np.asarray(torch.as_tensor(boxes).cpu(), dtype=np.int64).reshape(-1, 4)
    for x0, y0, x1, y1 in box_array:
        if x0 < 0:
            continue
        cv2.rectangle(canvas, (int(x0), int(y0)), (int(x1), int(y1)), color, thickness)
    return canvas


def image_grid(images: Sequence[np.ndarray], columns: int, padding: int = 2) -> np.ndarray:
    """Tile equally sized ``(H, W, 3)`` uint8 images row by row, with white padding."""
    if not images:
        raise ValueError("images must not be empty")
    height, width = images[0].shape[:2]
    if any(image.shape != images[0].shape for image in images):
        raise ValueError("images must all have the same shape")
    rows = -(-len(images) // columns)
    grid = np.full(
        (rows * height + (rows + 1) * padding, columns * width + (columns + 1) * padding, 3), 255, np.uint8
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_image(path: Union[str, Path], image: ImageLike) -> Path:
    """Write an RGB image as PNG (or the format the suffix names); parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(to_rgb_uint8(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image to {path}")
    return path
