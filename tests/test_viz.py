from __future__ import annotations

import numpy as np
import pytest
import torch

from camfix.viz import draw_boxes, image_grid, overlay, save_image, to_rgb_uint8


def test_to_rgb_uint8_accepts_tensor_and_float() -> None:
    image = torch.zeros(3, 4, 5, dtype=torch.uint8)
    image[0] = 200
    rgb = to_rgb_uint8(image)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and (rgb[..., 0] == 200).all()
    assert (to_rgb_uint8(np.full((2, 2, 3), 0.5)) == 128).all()


def test_to_rgb_uint8_rejects_out_of_range_float() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_uint8(np.full((2, 2, 3), 1.5))


def test_overlay_alpha_extremes() -> None:
    image = np.full((6, 7, 3), 10, np.uint8)
    saliency = torch.linspace(0, 1, 42).reshape(6, 7)
    assert (overlay(image, saliency, alpha=0.0) == image).all()
    assert not (overlay(image, saliency, alpha=1.0) == image).all()
    with pytest.raises(ValueError, match="saliency must have the image's size"):
        overlay(image, saliency[:5])
    with pytest.raises(ValueError, match=r"saliency must be in \[0, 1\]"):
        overlay(image, saliency * 2)


def test_draw_boxes_inclusive_corners_and_sentinel() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    drawn = draw_boxes(image, [[2, 3, 5, 7], [-1, -1, -1, -1]], color=(255, 0, 0), thickness=1)
    assert drawn[3, 2, 0] == 255 and drawn[7, 5, 0] == 255 and drawn[8, 6, 0] == 0
    assert image.sum() == 0  # the input is not modified


def test_image_grid_and_save(tmp_path) -> None:
    tiles = [np.full((3, 4, 3), v, np.uint8) for v in (0, 100, 200)]
    grid = image_grid(tiles, columns=2, padding=1)
    assert grid.shape == (2 * 3 + 3, 2 * 4 + 3, 3)
    assert (grid[1:4, 6:10] == 100).all()
    path = save_image(tmp_path / "deep" / "grid.png", grid)
    assert path.exists()
