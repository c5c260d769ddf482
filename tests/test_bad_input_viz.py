"""Bad and awkward input to camfix.viz.

- ``draw_boxes`` clips boxes that reach beyond the image, as documented, whatever their int64 coordinates and
  thickness (OpenCV's int32 parser used to refuse them), and equals the per-pixel definition.
- ``save_image`` checks everything before it creates a folder, and writes atomically: a failure leaves no new
  folder, no partial file and an existing file unchanged.
- Every argument error names the argument (``background``, not ``color``); no allocation without a bound.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camfix.viz import colorize, draw_boxes, draw_localization, image_grid, overlay, save_image, to_rgb_uint8

from references import reference_outlines
from refusals import fill_the_disk, make_read_only

INT64_MAX = 2**63 - 1
IMAGE = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)
COLOUR = (1, 2, 3)


coordinates = st.one_of(st.integers(0, 12), st.integers(0, INT64_MAX))


@given(
    st.lists(st.tuples(coordinates, coordinates, coordinates, coordinates), min_size=1, max_size=3),
    st.one_of(st.integers(1, 4), st.integers(1, 2**70)),
)
def test_draw_boxes_clips_any_box_to_the_image(raw: List[Tuple[int, int, int, int]], thickness: int) -> None:
    boxes = [[min(a, c), min(b, d), max(a, c), max(b, d)] for a, b, c, d in raw]
    drawn = draw_boxes(IMAGE, np.array(boxes, dtype=np.int64), COLOUR, thickness)
    assert np.array_equal(drawn, reference_outlines(IMAGE, boxes, COLOUR, thickness))


def test_draw_boxes_beyond_int64_in_unsigned_arrays() -> None:
    boxes = np.array([[2, 1, 2**64 - 1, 2**64 - 1]], dtype=np.uint64)  # a plain cast would wrap to -1: no box
    expected = reference_outlines(IMAGE, [[2, 1, 10**30, 10**30]], COLOUR, 1)
    assert np.array_equal(draw_boxes(IMAGE, boxes, COLOUR, 1), expected)


BAD_DRAWS: Dict[str, Tuple[Callable[[], object], type, str]] = {
    "boxes of Python ints beyond int64": (
        lambda: draw_boxes(IMAGE, [0, 0, 2**70, 3]),
        TypeError,
        "boxes must hold integer pixel indices (x0, y0, x1, y1) that fit in int64",
    ),
    "ragged boxes": (lambda: draw_boxes(IMAGE, [[0, 0, 1, 1], [0, 0, 1]]), ValueError, "boxes must be one box"),
    "boxes of strings": (lambda: draw_boxes(IMAGE, ["a", "b", "c", "d"]), TypeError, "boxes must hold integer"),
    "boxes None": (lambda: draw_boxes(IMAGE, None), TypeError, "boxes must be a torch.Tensor or a numpy array"),
    "boxes 3-D": (lambda: draw_boxes(IMAGE, np.zeros((1, 1, 4), int)), ValueError, "boxes must have shape"),
    "half a sentinel": (lambda: draw_boxes(IMAGE, [-1, -1, -1, 3]), ValueError, "boxes is [-1, -1, -1, 3]: a box"),
    "color numpy array": (lambda: draw_boxes(IMAGE, [0, 0, 1, 1], np.array([1, 2, 3])), ValueError, "color must"),
    "color floats": (lambda: draw_boxes(IMAGE, [0, 0, 1, 1], (1.0, 2, 3)), ValueError, "color must be an (R, G, B)"),
    "thickness 0": (lambda: draw_boxes(IMAGE, [0, 0, 1, 1], thickness=0), ValueError, "thickness must be an int"),
    "draw_localization thickness 0 without boxes": (
        lambda: draw_localization(IMAGE, thickness=0),
        ValueError,
        "thickness must be an int >= 1",
    ),
    "draw_localization alpha NaN without a map": (
        lambda: draw_localization(IMAGE, alpha=float("nan")),
        ValueError,
        "alpha must be in [0, 1]",
    ),
    "draw_localization colormap unknown without a map": (
        lambda: draw_localization(IMAGE, colormap="nope"),
        ValueError,
        "colormap must be one of",
    ),
    "background a pair": (lambda: image_grid([IMAGE], background=(1, 2)), ValueError, "background must be an (R,"),
    "background a string": (lambda: image_grid([IMAGE], background="white"), ValueError, "background must be an"),
    "grid columns 10**12": (lambda: image_grid([IMAGE], columns=10**12), ValueError, "lower columns (1000000000000)"),
    "grid padding 10**6": (lambda: image_grid([IMAGE], padding=10**6), ValueError, "or padding (1000000)"),
    "grid of a generator": (lambda: image_grid(tile for tile in [IMAGE]), TypeError, "images must be a sequence"),
    "saliency of objects": (lambda: colorize(np.zeros((2, 2), object)), TypeError, "saliency must be floating"),
    "saliency of ints": (lambda: colorize(np.zeros((2, 2), np.int64)), TypeError, "saliency must be floating"),
    "saliency of the wrong size": (lambda: overlay(IMAGE, np.zeros((2, 2))), ValueError, "saliency must have the"),
    "image of objects": (lambda: to_rgb_uint8(np.zeros((2, 2, 3), object)), TypeError, "image must be uint8"),
    "image of uint16": (lambda: to_rgb_uint8(np.zeros((2, 2, 3), np.uint16)), TypeError, "image must be uint8"),
    "image 0 x 4": (lambda: to_rgb_uint8(np.zeros((0, 4, 3), np.uint8)), ValueError, "image must be RGB"),
    "image with NaN": (lambda: to_rgb_uint8(np.full((2, 2, 3), np.nan)), ValueError, "image must be finite"),
    "image above 1": (lambda: to_rgb_uint8(np.full((2, 2, 3), 1.5)), ValueError, "must have values in [0, 1]"),
    "image a list": (lambda: to_rgb_uint8([[0, 1]]), TypeError, "image must be a numpy array"),
}


@pytest.mark.parametrize("case", sorted(BAD_DRAWS))
def test_viz_names_the_bad_argument(case: str) -> None:
    call, error, message = BAD_DRAWS[case]
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


def test_long_double_images_and_maps_and_numpy_colormap_codes_work() -> None:
    gray = np.full((2, 3), 0.5, dtype=np.longdouble)
    assert np.array_equal(to_rgb_uint8(gray), to_rgb_uint8(gray.astype(np.float64)))
    assert np.array_equal(colorize(gray, np.int64(cv2.COLORMAP_JET)), colorize(gray.astype(np.float64), "jet"))


# --------------------------------------------------------------------------------------------------- save_image


def _tree(root: Path) -> List[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_save_image_refuses_before_creating_anything(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.png").mkdir()
    before = _tree(tmp_path)
    refusals = [
        (tmp_path / "file.txt" / "deep" / "a.png", NotADirectoryError, "is a file, not a folder"),
        (tmp_path / "folder.png", IsADirectoryError, "an existing folder"),
        (tmp_path / "new" / "deeper" / "a.unknown", ValueError, "image suffix OpenCV can write"),
        (tmp_path / "new" / "deeper" / "no_suffix", ValueError, "image suffix OpenCV can write"),
        (3, TypeError, "path must be a path"),
        ("", ValueError, "path must not be an empty path"),
    ]
    for path, error, message in refusals:
        with pytest.raises(error, match=message):
            save_image(path, IMAGE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="image must be a numpy array"):
        save_image(tmp_path / "new" / "deeper" / "a.png", "not an image")
    assert _tree(tmp_path) == before  # no folder was created for any of them


def test_save_image_into_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_read_only(monkeypatch, tmp_path)
    with pytest.raises(PermissionError, match="is not writable"):
        save_image(tmp_path / "sub" / "a.png", IMAGE)
    assert _tree(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_image_into_a_chmod_read_only_folder(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            save_image(tmp_path / "a.png", IMAGE)
    finally:
        tmp_path.chmod(0o755)


def test_save_image_on_a_full_disk_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_image(tmp_path / "a.png", IMAGE)
    old = path.read_bytes()

    fill_the_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_image(path, np.zeros((6, 7, 3), np.uint8))
    assert path.read_bytes() == old and _tree(tmp_path) == ["a.png"]  # unchanged, no temporary file left


def test_save_image_keeps_uppercase_suffixes_and_tensors(tmp_path: Path) -> None:
    path = save_image(tmp_path / "A.PNG", torch.from_numpy(IMAGE).permute(2, 0, 1))
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], IMAGE)
