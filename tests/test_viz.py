"""camfix.viz against per-pixel loop references written from the documented formulas, plus bad input.

- to_rgb_uint8: every accepted layout and dtype; a float value ``v`` becomes ``round(255 v)`` (halves to even).
- colorize / overlay: level ``round(255 s)`` looked up in the colormap's 256 colours; the blend
  ``round(alpha * colour + (1 - alpha) * image)`` in float64.
- draw_boxes: a pixel is coloured iff it lies inside the inclusive box, within ``thickness`` of its border.
- image_grid: each tile at ``padding + index * (size + padding)``, background elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from typing import List, Tuple

import cv2
import numpy as np
import pytest
import torch

from camfix.viz import (
    COLORMAPS,
    GROUND_TRUTH_COLOR,
    PREDICTED_COLOR,
    colorize,
    draw_boxes,
    draw_localization,
    image_grid,
    overlay,
    save_image,
    to_rgb_uint8,
)

from references import reference_outlines


def reference_rgb(values: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1] -> uint8 by Python's round (halves to even), pixel by pixel."""
    out = np.zeros(values.shape, np.uint8)
    for index in np.ndindex(values.shape):
        out[index] = round(float(values[index]) * 255)
    return out


def colormap_table(code: int) -> List[Tuple[int, int, int]]:
    """The 256 RGB colours of an OpenCV colormap, read off a ramp image."""
    ramp = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), code)
    return [tuple(int(v) for v in ramp[level, 0, ::-1]) for level in range(256)]


def reference_overlay(image: np.ndarray, saliency: np.ndarray, alpha: float, code: int) -> np.ndarray:
    table = colormap_table(code)
    out = np.zeros(image.shape, np.uint8)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            colour = table[round(float(saliency[y, x]) * 255)]
            for c in range(3):
                out[y, x, c] = round(alpha * colour[c] + (1 - alpha) * float(image[y, x, c]))
    return out


# ---------------------------------------------------------------------------------------------------- to_rgb_uint8


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_to_rgb_uint8_float_numpy_matches_rounding(dtype: type) -> None:
    rng = np.random.default_rng(0)
    values = rng.random((5, 7, 3)).astype(dtype)
    values[0, 0] = [0.0, 1.0, 0.5]
    expected = reference_rgb(values.astype(np.float64))
    assert np.array_equal(to_rgb_uint8(values), expected)
    assert to_rgb_uint8(values)[0, 0].tolist() == [0, 255, 128]  # 127.5 rounds to even


def test_to_rgb_uint8_layouts() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    assert np.array_equal(to_rgb_uint8(rgb), rgb)
    assert np.array_equal(to_rgb_uint8(chw), rgb)
    assert np.array_equal(to_rgb_uint8(chw[:, ::1, :].contiguous().float() / 255), rgb)
    gray = rgb[..., 0]
    expected_gray = np.repeat(gray[..., None], 3, axis=2)
    for layout in (gray, gray[..., None], torch.from_numpy(gray), torch.from_numpy(gray)[None]):
        assert np.array_equal(to_rgb_uint8(layout), expected_gray)
    out = to_rgb_uint8(rgb[:, ::2])  # a strided view comes back contiguous
    assert out.flags["C_CONTIGUOUS"] and np.array_equal(out, rgb[:, ::2])


def test_to_rgb_uint8_bfloat16_tensor() -> None:
    values = torch.tensor([0.0, 0.25, 1.0]).reshape(3, 1, 1).expand(3, 2, 2).to(torch.bfloat16)
    assert to_rgb_uint8(values)[0, 0].tolist() == [0, round(0.25 * 255), 255]


@pytest.mark.parametrize(
    "image, error, message",
    [
        (np.full((2, 2, 3), 1.5), ValueError, r"\[0, 1\]"),
        (np.full((2, 2, 3), -0.1, np.float32), ValueError, r"\[0, 1\]"),
        (np.full((2, 2, 3), np.nan), ValueError, "finite"),
        (np.zeros((2, 2, 3), np.int16), TypeError, "uint8"),
        (np.zeros((2, 2, 4), np.uint8), ValueError, "RGB"),
        (np.zeros((0, 2, 3), np.uint8), ValueError, "RGB"),
        (torch.zeros(2, 4, 4), ValueError, r"\(3, H, W\)"),
        (torch.zeros(1, 3, 4, 4), ValueError, r"\(3, H, W\)"),
        ([[0, 0, 0]], TypeError, "numpy array"),
    ],
)
def test_to_rgb_uint8_rejects(image: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        to_rgb_uint8(image)


# ------------------------------------------------------------------------------------------- colorize and overlay


@pytest.mark.parametrize("name", ["jet", "viridis", "inferno"])
def test_colorize_looks_up_rounded_levels(name: str) -> None:
    saliency = torch.linspace(0, 1, 40, dtype=torch.float64).reshape(5, 8)
    table = colormap_table(COLORMAPS[name])
    expected = np.array([[table[round(float(v) * 255)] for v in row] for row in saliency], np.uint8)
    assert np.array_equal(colorize(saliency, name), expected)
    assert np.array_equal(colorize(saliency.numpy().astype(np.float32), COLORMAPS[name]), expected)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_overlay_matches_blend_reference(alpha: float) -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    saliency = rng.random((6, 9))
    expected = reference_overlay(image, saliency, alpha, COLORMAPS["jet"])
    assert np.array_equal(overlay(image, torch.from_numpy(saliency), alpha), expected)
    # A float CHW tensor image gives the same picture as its uint8 HWC array.
    chw = torch.from_numpy(image).permute(2, 0, 1).double() / 255
    assert np.array_equal(overlay(chw, saliency, alpha), expected)
    if alpha == 0.0:
        assert np.array_equal(overlay(image, saliency, alpha), image)


def test_overlay_other_colormap() -> None:
    image = np.full((3, 4, 3), 40, np.uint8)
    saliency = np.linspace(0, 1, 12).reshape(3, 4)
    expected = reference_overlay(image, saliency, 0.6, COLORMAPS["turbo"])
    assert np.array_equal(overlay(image, saliency, 0.6, colormap="Turbo"), expected)


def test_overlay_rejects_bad_input() -> None:
    image = np.full((6, 7, 3), 10, np.uint8)
    saliency = torch.linspace(0, 1, 42).reshape(6, 7)
    with pytest.raises(ValueError, match="saliency must have the image's size"):
        overlay(image, saliency[:5])
    with pytest.raises(ValueError, match=r"saliency must have values in \[0, 1\]"):
        overlay(image, saliency * 2)
    with pytest.raises(ValueError, match="saliency must be finite"):
        overlay(image, torch.full((6, 7), float("nan")))
    with pytest.raises(TypeError, match="saliency must be floating point"):
        overlay(image, torch.ones(6, 7, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"saliency must have shape \(H, W\)"):
        overlay(image, saliency[None])
    with pytest.raises(TypeError, match="saliency must be a tensor"):
        overlay(image, [[0.5] * 7] * 6)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        overlay(image, saliency, alpha=1.5)
    with pytest.raises(ValueError, match="colormap must be one of"):
        overlay(image, saliency, colormap="rainbowish")
    with pytest.raises(ValueError, match="colormap must be one of"):
        overlay(image, saliency, colormap=999)


# ------------------------------------------------------------------------------------------------------ draw_boxes


@pytest.mark.parametrize("thickness", [1, 2, 3])
def test_draw_boxes_matches_reference(thickness: int) -> None:
    rng = np.random.default_rng(thickness)
    image = rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)
    boxes = [[2, 3, 9, 7], [0, 0, 14, 11], [5, 5, 5, 5], [4, 1, 8, 2], [10, 6, 20, 30], [-1, -1, -1, -1]]
    expected = reference_outlines(image, boxes, (255, 0, 0), thickness)
    assert np.array_equal(draw_boxes(image, boxes, (255, 0, 0), thickness), expected)
    assert np.array_equal(draw_boxes(image, torch.tensor(boxes), (255, 0, 0), thickness), expected)
    assert np.array_equal(draw_boxes(image, np.array(boxes, np.int32), (255, 0, 0), thickness), expected)


def test_draw_boxes_single_box_default_colour_and_copy() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    drawn = draw_boxes(image, (2, 3, 5, 7), thickness=1)
    assert drawn[3, 2].tolist() == list(PREDICTED_COLOR) and drawn[7, 5].tolist() == list(PREDICTED_COLOR)
    assert drawn[8, 6].tolist() == [0, 0, 0] and drawn[5, 3].tolist() == [0, 0, 0]  # outside; interior
    assert image.sum() == 0  # the input is not modified
    assert np.array_equal(draw_boxes(image, [], thickness=1), image)
    assert np.array_equal(draw_boxes(image, torch.empty(0, 4, dtype=torch.long)), image)


@pytest.mark.parametrize(
    "boxes, error, message",
    [
        ([[1.0, 2.0, 3.0, 4.0]], TypeError, "integer pixel indices"),
        (torch.tensor([[1.5, 2, 3, 4]]), TypeError, "integer pixel indices"),
        (np.array([[True, False, True, True]]), TypeError, "integer pixel indices"),
        ([[1, 2, 3]], ValueError, r"shape \(4,\) or \(M, 4\)"),
        ([[5, 2, 3, 4]], ValueError, "x0 <= x1"),
        ([[-2, 0, 3, 4]], ValueError, "sentinel"),
        ("box", TypeError, "boxes must be"),
    ],
)
def test_draw_boxes_rejects_bad_boxes(boxes: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        draw_boxes(np.zeros((8, 8, 3), np.uint8), boxes)


def test_draw_boxes_rejects_bad_colour_and_thickness() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="color must be an"):
        draw_boxes(image, [0, 0, 2, 2], color=(300, 0, 0))
    with pytest.raises(ValueError, match="color must be an"):
        draw_boxes(image, [0, 0, 2, 2], color=(255, 0))
    with pytest.raises(ValueError, match="thickness must be an int >= 1"):
        draw_boxes(image, [0, 0, 2, 2], thickness=0)
    with pytest.raises(TypeError, match="thickness must be an int"):
        draw_boxes(image, [0, 0, 2, 2], thickness=1.5)


def test_draw_localization_composes_overlay_and_boxes() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((3, 10, 12))  # float CHW
    saliency = rng.random((10, 12))
    predicted, truth = [1, 1, 8, 6], [3, 2, 10, 8]
    picture = draw_localization(torch.from_numpy(image), saliency, predicted, truth, alpha=0.4, thickness=1)
    rgb = reference_rgb(image.transpose(1, 2, 0))
    expected = reference_overlay(rgb, saliency, 0.4, COLORMAPS["jet"])
    expected = reference_outlines(expected, [truth], GROUND_TRUTH_COLOR, 1)
    expected = reference_outlines(expected, [predicted], PREDICTED_COLOR, 1)
    assert np.array_equal(picture, expected)
    assert picture[6, 3].tolist() == list(PREDICTED_COLOR)  # where the outlines cross, the prediction is on top
    assert np.array_equal(draw_localization(rgb), rgb)


# ------------------------------------------------------------------------------------------------------ image_grid


def test_image_grid_matches_reference_layout() -> None:
    rng = np.random.default_rng(4)
    tiles = [rng.integers(0, 256, (3, 4, 3), dtype=np.uint8) for _ in range(5)]
    grid = image_grid(tiles, columns=2, padding=1, background=(10, 20, 30))
    expected = np.zeros((3 * 3 + 4, 2 * 4 + 3, 3), np.uint8)
    expected[...] = (10, 20, 30)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, 2)
        for y in range(3):
            for x in range(4):
                expected[1 + row * 4 + y, 1 + column * 5 + x] = tile[y, x]
    assert np.array_equal(grid, expected)


def test_image_grid_accepts_batches_and_mixed_kinds() -> None:
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    row = image_grid(batch)  # default: one row, padding 2
    assert row.shape == (5 + 4, 3 * 6 + 8, 3)
    as_tensor = torch.from_numpy(batch).permute(0, 3, 1, 2)
    assert np.array_equal(image_grid(as_tensor), row)
    mixed = [batch[0], as_tensor[1].float() / 255, batch[2]]
    assert np.array_equal(image_grid(mixed), row)


def test_image_grid_rejects_bad_input() -> None:
    tile = np.zeros((3, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="must not be empty"):
        image_grid([])
    with pytest.raises(ValueError, match=r"images\[1\] is \(4, 4\)"):
        image_grid([tile, np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="columns must be an int >= 1"):
        image_grid([tile], columns=0)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        image_grid([tile], padding=-1)
    with pytest.raises(TypeError, match="images must be a sequence"):
        image_grid(tile)
    with pytest.raises(ValueError, match=r"images\[0\]: a floating point image"):
        image_grid([np.full((3, 4, 3), 2.0)])


# ------------------------------------------------------------------------------------------------------ save_image


def test_save_image_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = save_image(tmp_path / "deep" / "picture.png", torch.from_numpy(rgb).permute(2, 0, 1))
    assert path == tmp_path / "deep" / "picture.png"
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], rgb)  # lossless, RGB order kept
    gray = save_image(tmp_path / "gray.png", rgb[..., 0])
    assert np.array_equal(cv2.imread(str(gray))[..., 0], rgb[..., 0])
    with pytest.raises(ValueError, match="suffix"):
        save_image(tmp_path / "picture.unknown", rgb)


def test_import_needs_no_gui_or_matplotlib() -> None:
    code = "import sys, camfix.viz; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
