"""camfix.boxes, the one box convention: mask_to_box against a pure-python 8-connected flood fill, box_iou
against pixel sets, resize_boxes against the reference evaluator's resize_bbox, and the one check of boxes that
every box-taking function shares (its options, its messages).
"""

from __future__ import annotations

import random
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from references import Box, largest_component_boxes, reference_box

import camfix
from camfix import metrics, viz
from camfix.boxes import NO_BOX, _check_boxes_per_image, box_iou, check_boxes, mask_to_box, resize_boxes

masks = st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda shape: arrays(np.bool_, shape)
)


# ---------------------------------------------------------------------------------------------- the public names


def test_the_old_public_names_are_the_same_objects() -> None:
    assert camfix.NO_BOX is NO_BOX == (-1, -1, -1, -1)
    assert camfix.mask_to_box is mask_to_box
    assert metrics.box_iou is box_iou and metrics.resize_boxes is resize_boxes
    assert camfix.boxes.__all__ == ["NO_BOX", "mask_to_box", "box_iou", "resize_boxes", "check_boxes"]


# ------------------------------------------------------------------------------------------------ mask_to_box

@given(masks=masks)
def test_mask_to_box_matches_flood_fill(masks: np.ndarray) -> None:
    boxes = mask_to_box(torch.from_numpy(masks))
    assert boxes.dtype == torch.int64 and boxes.shape == (len(masks), 4)
    for box, mask in zip(boxes.tolist(), masks):
        # The tie-break between equally large regions has its own test below.
        assert tuple(box) in largest_component_boxes(mask) or (not mask.any() and tuple(box) == NO_BOX)


def test_mask_to_box_matches_flood_fill_on_larger_random_masks() -> None:
    generator = torch.Generator().manual_seed(3)
    for density in (0.2, 0.45, 0.6):
        masks = torch.rand(4, 30, 41, generator=generator) < density
        for box, mask in zip(mask_to_box(masks).tolist(), masks.numpy()):
            assert tuple(box) in largest_component_boxes(mask)


def test_mask_to_box_tie_goes_to_the_first_region_in_raster_order() -> None:
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[0, 10] = True  # first in raster order
    mask[1, 2] = True  # same size, later in raster order, but in an earlier 2x2 block column
    assert reference_box(mask.numpy()) == (10, 0, 10, 0)
    assert mask_to_box(mask[None]).tolist() == [[10, 0, 10, 0]]


def test_mask_to_box_tie_in_the_same_row() -> None:
    mask = torch.zeros(1, 3, 9, dtype=torch.bool)
    mask[0, 1, 1:3] = True
    mask[0, 1, 5:7] = True
    assert mask_to_box(mask).tolist() == [[1, 1, 2, 1]] == [list(reference_box(mask[0].numpy()))]


def test_mask_to_box_edge_cases() -> None:
    empty = torch.zeros(1, 5, 6, dtype=torch.bool)
    assert mask_to_box(empty).tolist() == [list(NO_BOX)]
    assert NO_BOX == (-1, -1, -1, -1)
    full = torch.ones(1, 5, 6, dtype=torch.bool)
    assert mask_to_box(full).tolist() == [[0, 0, 5, 4]]  # inclusive: last column 5, last row 4
    for y, x in [(0, 0), (4, 5), (2, 3), (0, 5), (4, 0)]:
        single = torch.zeros(1, 5, 6, dtype=torch.bool)
        single[0, y, x] = True
        assert mask_to_box(single).tolist() == [[x, y, x, y]]  # area (x1 - x0 + 1) * (y1 - y0 + 1) = 1
    assert mask_to_box(torch.ones(1, 1, 1, dtype=torch.bool)).tolist() == [[0, 0, 0, 0]]
    assert mask_to_box(torch.zeros(1, 1, 1, dtype=torch.bool)).tolist() == [list(NO_BOX)]
    assert mask_to_box(torch.zeros(0, 3, 3, dtype=torch.bool)).shape == (0, 4)


def test_mask_to_box_uses_8_connectivity_and_the_largest_region() -> None:
    mask = torch.zeros(1, 8, 10, dtype=torch.bool)
    for i in range(4):  # a diagonal chain of 4 pixels: one region with 8-connectivity, four with 4-connectivity
        mask[0, i, i] = True
    mask[0, 5:8, 6:10] = True  # 12 pixels: the largest, although later in raster order
    assert mask_to_box(mask).tolist() == [[6, 5, 9, 7]]
    mask[0, 4, 4:6] = True  # the chain now reaches the block diagonally and merges with it
    assert mask_to_box(mask).tolist() == [[0, 0, 9, 7]]


def test_mask_to_box_ring_and_non_contiguous_masks() -> None:
    ring = torch.ones(1, 5, 5, dtype=torch.bool)
    ring[0, 1:4, 1:4] = False
    ring[0, 2, 2] = True  # an island inside the hole, a separate region
    assert mask_to_box(ring).tolist() == [[0, 0, 4, 4]]
    masks = torch.rand(3, 9, 7) > 0.5
    transposed = masks.transpose(1, 2)
    assert torch.equal(mask_to_box(transposed), mask_to_box(transposed.contiguous()))


# ------------------------------------------------------------------------------------- box_iou, against pixel sets


def box_pixels(box: Box) -> set:
    """The pixels ``(x, y)`` an inclusive box covers; the no-box sentinel covers none."""
    if tuple(box) == (-1, -1, -1, -1):
        return set()
    return {(x, y) for x in range(box[0], box[2] + 1) for y in range(box[1], box[3] + 1)}


def pixel_set_iou(a: Box, b: Box) -> float:
    pixels_a, pixels_b = box_pixels(a), box_pixels(b)
    union = len(pixels_a | pixels_b)
    return len(pixels_a & pixels_b) / union if union else 0.0


def random_boxes(rng: random.Random, count: int, size: int) -> List[Box]:
    boxes = []
    for _ in range(count):
        if rng.random() < 0.15:
            boxes.append((-1, -1, -1, -1))
            continue
        x0, x1 = sorted(rng.randrange(size) for _ in range(2))
        y0, y1 = sorted(rng.randrange(size) for _ in range(2))
        boxes.append((x0, y0, x1, y1))
    return boxes


def test_box_iou_equals_pixel_sets() -> None:
    rng = random.Random(0)
    boxes_a, boxes_b = random_boxes(rng, 12, 10), random_boxes(rng, 9, 10)
    expected = [[pixel_set_iou(a, b) for b in boxes_b] for a in boxes_a]
    result = box_iou(torch.tensor(boxes_a, dtype=torch.int32), torch.tensor(boxes_b))
    assert result.dtype == torch.float64 and result.shape == (12, 9)
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 9, 9), (0, 0, 9, 9), 1.0),
        ((0, 0, 0, 0), (0, 0, 0, 0), 1.0),  # one pixel: area 1, not 0
        ((0, 0, 4, 4), (5, 0, 9, 4), 0.0),  # adjacent columns, no shared pixel
        ((0, 0, 4, 4), (4, 0, 8, 4), 5 / 45),  # one shared column of 5 pixels
        ((2, 2, 3, 3), (0, 0, 9, 9), 4 / 100),  # containment
        ((-1, -1, -1, -1), (0, 0, 0, 0), 0.0),
        ((-1, -1, -1, -1), (-1, -1, -1, -1), 0.0),  # no box matches nothing, not even no box
    ],
)
def test_box_iou_edge_cases(a: Box, b: Box, expected: float) -> None:
    assert box_iou(torch.tensor([a]), torch.tensor([b])).item() == pytest.approx(expected, abs=1e-15)
    assert pixel_set_iou(a, b) == pytest.approx(expected, abs=1e-15)


def test_box_iou_of_empty_sets_has_an_empty_side() -> None:
    none = torch.zeros(0, 4, dtype=torch.long)
    assert box_iou(none, torch.tensor([[0, 0, 1, 1]])).shape == (0, 1)
    assert box_iou(torch.tensor([[0, 0, 1, 1]]), none).shape == (1, 0)


def test_box_iou_rejects_bad_boxes() -> None:
    good = torch.tensor([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match=r"boxes_a must hold integer pixel indices \(x0, y0, x1, y1\) .*float32"):
        box_iou(good.float(), good)
    with pytest.raises(TypeError, match="boxes_b must be a torch.Tensor"):
        box_iou(good, [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"boxes_b must have shape \(M, 4\) \(x0, y0, x1, y1\), got shape \(1, 3\)"):
        box_iou(good, torch.tensor([[0, 0, 1]]))
    with pytest.raises(ValueError, match=r"boxes_a must have shape \(M, 4\) \(2 dims\)"):
        box_iou(good[0], good)
    with pytest.raises(ValueError, match=r"boxes_a\[1\] is \[3, 0, 2, 1\]: a box must be"):
        box_iou(torch.tensor([[0, 0, 1, 1], [3, 0, 2, 1]]), good)
    with pytest.raises(ValueError, match=r"boxes_b\[0\] is \[-1, 0, 2, 1\].*or the no-box sentinel"):
        box_iou(good, torch.tensor([[-1, 0, 2, 1]]))

# ------------------------------------------------------------------------------------------------- resize_boxes


def test_resize_boxes_as_the_reference() -> None:
    # The reference's own cases for resize_bbox.
    assert resize_boxes(np.array([[1, 2, 4, 3]]), (10, 20), (35, 10)).tolist() == [[3, 1, 14, 1]]
    assert resize_boxes(np.array([[1, 2, 1, 2]]), (3, 3), (3, 3)).tolist() == [[1, 2, 1, 2]]
    assert resize_boxes(np.array([[0, 0, 499, 374]]), (500, 375), (224, 224)).tolist() == [[0, 0, 223, 223]]


def test_resize_boxes_keeps_no_box() -> None:
    boxes = np.array([[0, 0, 9, 9], list(NO_BOX), [2, 3, 5, 7]])
    assert resize_boxes(boxes, (10, 10), (5, 5)).tolist() == [[0, 0, 4, 4], list(NO_BOX), [1, 1, 2, 3]]
    with pytest.raises(ValueError, match=r"boxes\[0\] is \[-1, -1, -1, 3\]: a box must be .*or the no-box sentinel"):
        resize_boxes(np.array([[-1, -1, -1, 3]]), (10, 10), (5, 5))


# ------------------------------------------------------------------------------------------ resize_boxes, bad input

BOXES = np.array([[0, 0, 9, 9], [2, 3, 5, 7]])

BAD_RESIZES: Dict[str, Tuple[dict, type, str]] = {
    "image size 0": ({"image_size": (0, 10)}, ValueError, "image_size must be a pair of positive ints"),
    "image size negative": ({"image_size": (10, -1)}, ValueError, "image_size must be a pair of positive ints"),
    "image size float": ({"image_size": (10.0, 10)}, ValueError, "image_size must be a pair of positive ints"),
    "image size bool": ({"image_size": (True, 10)}, ValueError, "image_size must be a pair of positive ints"),
    "image size one int": ({"image_size": 10}, ValueError, "image_size must be a pair of positive ints"),
    "image size three ints": ({"image_size": (10, 10, 3)}, ValueError, "image_size must be a pair of positive"),
    "image size a string": ({"image_size": "10x10"}, ValueError, "image_size must be a pair of positive ints"),
    "map size 0": ({"map_size": (224, 0)}, ValueError, "map_size must be a pair of positive ints"),
    "map size negative": ({"map_size": (-224, 224)}, ValueError, "map_size must be a pair of positive ints"),
    "map size float": ({"map_size": (224, 22.4)}, ValueError, "map_size must be a pair of positive ints"),
    "map size None": ({"map_size": None}, ValueError, "map_size must be a pair of positive ints"),
    "boxes float": ({"boxes": BOXES.astype(float)}, TypeError, "boxes must hold integer pixel indices"),
    "boxes bool": ({"boxes": BOXES > 3}, TypeError, "boxes must hold integer pixel indices"),
    "boxes a list": ({"boxes": BOXES.tolist()}, TypeError, "boxes must be a numpy array"),
    "boxes a tensor": ({"boxes": torch.from_numpy(BOXES)}, TypeError, "boxes must be a numpy array"),
    "boxes 1-D": ({"boxes": BOXES[0]}, ValueError, "boxes must have shape (M, 4)"),
    "boxes (M, 5)": ({"boxes": np.zeros((2, 5), int)}, ValueError, "boxes must have shape (M, 4)"),
    "box beyond the image": ({"boxes": np.array([[0, 0, 10, 9]])}, ValueError, "<= 9 (inclusive pixel indices inside"),
    "box negative": ({"boxes": np.array([[-1, 0, 3, 3]])}, ValueError, "<= 9 (inclusive pixel indices inside"),
    "box reversed": ({"boxes": np.array([[5, 0, 3, 3]])}, ValueError, "<= 9 (inclusive pixel indices inside"),
    "box huge": ({"boxes": np.array([[0, 0, 2**62, 3]])}, ValueError, "<= 9 (inclusive pixel indices inside"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESIZES))
def test_resize_boxes_names_the_bad_argument(case: str) -> None:
    overrides, error, message = BAD_RESIZES[case]
    arguments = {"boxes": BOXES, "image_size": (10, 10), "map_size": (224, 224), **overrides}
    with pytest.raises(error) as raised:
        resize_boxes(**arguments)
    assert message in str(raised.value)


@given(
    st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000), st.data()
)
def test_resize_boxes_of_boxes_inside_land_inside_the_map(
    width: int, height: int, new_width: int, new_height: int, data: st.DataObject
) -> None:
    x0 = data.draw(st.integers(0, width - 1))
    x1 = data.draw(st.integers(x0, width - 1))
    y0 = data.draw(st.integers(0, height - 1))
    y1 = data.draw(st.integers(y0, height - 1))
    scaled = resize_boxes(np.array([[x0, y0, x1, y1]]), (width, height), (new_width, new_height))
    sx0, sy0, sx1, sy1 = scaled[0].tolist()
    assert 0 <= sx0 <= sx1 < new_width and 0 <= sy0 <= sy1 < new_height


def test_resize_boxes_accepts_numpy_sizes_and_no_boxes() -> None:
    assert resize_boxes(BOXES, (np.int64(10), np.int32(10)), (5, 5)).tolist() == [[0, 0, 4, 4], [1, 1, 2, 3]]
    assert resize_boxes(np.zeros((0, 4), np.int64), (10, 10), (5, 5)).shape == (0, 4)


# ------------------------------------------------------------------------------------- the one check of boxes


def test_check_boxes_accepts_the_kinds_asked_for() -> None:
    expected = np.array([[1, 2, 3, 4]], dtype=np.int64)
    for value in (torch.tensor([[1, 2, 3, 4]], dtype=torch.int32), np.array([[1, 2, 3, 4]], np.uint8), [[1, 2, 3, 4]]):
        array = check_boxes("b", value, kinds=(torch.Tensor, np.ndarray, list))
        assert array.dtype == np.int64 and array.flags["C_CONTIGUOUS"] and np.array_equal(array, expected)
    assert np.array_equal(check_boxes("b", (1, 2, 3, 4), kinds=(list,), allow_one_box=True), expected)
    assert check_boxes("b", [], kinds=(list,)).shape == (0, 4)
    with pytest.raises(TypeError, match=r"^b must be a torch.Tensor of integer boxes \(x0, y0, x1, y1\) of shape"):
        check_boxes("b", [[1, 2, 3, 4]])
    with pytest.raises(TypeError, match=r"^b must be a numpy array or a list of integer boxes"):
        check_boxes("b", torch.tensor([[1, 2, 3, 4]]), kinds=(np.ndarray, list))
    with pytest.raises(ValueError, match=r"^b must have shape \(M, 4\) \(2 dims\), got 1 dims"):
        check_boxes("b", np.array([1, 2, 3, 4]), kinds=(np.ndarray,))


@pytest.mark.parametrize(
    "box, size, allow_no_box, bad",
    [
        ((0, 0, 0, 0), None, False, False),
        ((3, 4, 3, 4), (5, 4), False, False),  # the last pixel of a 5x4 (H x W) image
        ((3, 4, 4, 4), (5, 4), False, True),  # x1 = W
        ((3, 4, 3, 5), (5, 4), False, True),  # y1 = H
        ((0, 0, 2**40, 2**40), None, False, False),  # no size: no bound
        ((2, 0, 1, 0), None, False, True),  # x1 < x0
        ((0, 2, 0, 1), None, False, True),  # y1 < y0
        ((-1, 0, 3, 3), None, True, True),  # negative, not the sentinel
        ((-1, -1, -1, -1), None, False, True),
        ((-1, -1, -1, -1), (5, 4), True, False),
    ],
)
def test_check_boxes_rule(box: Box, size: object, allow_no_box: bool, bad: bool) -> None:
    tensor = torch.tensor([[0, 0, 0, 0], box])
    if not bad:
        assert check_boxes("b", tensor, size=size, allow_no_box=allow_no_box).tolist() == [[0, 0, 0, 0], list(box)]
        return
    expected = rf"^b\[1\] is \[{', '.join(map(str, box))}\]: a box must be \(x0, y0, x1, y1\)"
    with pytest.raises(ValueError, match=expected) as raised:
        check_boxes("b", tensor, size=size, allow_no_box=allow_no_box)
    assert ("or the no-box sentinel" in str(raised.value)) == allow_no_box
    assert ("inside the image of width 4 and height 5" in str(raised.value)) == (size is not None)


def test_check_boxes_of_uint64_beyond_int64_reads_int64_max() -> None:
    boxes = np.array([[2, 1, 2**64 - 1, 2**64 - 1]], dtype=np.uint64)
    assert check_boxes("b", boxes, kinds=(np.ndarray,)).tolist() == [[2, 1, 2**63 - 1, 2**63 - 1]]


def test_check_boxes_per_image_names_the_image() -> None:
    size = (8, 8)
    per_row = _check_boxes_per_image("boxes", torch.tensor([[0, 0, 3, 3], [1, 1, 2, 2]]), 2, size)
    assert [a.tolist() for a in per_row] == [[[0, 0, 3, 3]], [[1, 1, 2, 2]]]
    nested = _check_boxes_per_image("boxes", torch.tensor([[[0, 0, 3, 3], [1, 1, 2, 2]]]), 1, size)
    assert [a.tolist() for a in nested] == [[[0, 0, 3, 3], [1, 1, 2, 2]]]
    with pytest.raises(ValueError, match=r"^boxes\[1\] is \[1, 1, 8, 2\]: .*<= 7"):
        _check_boxes_per_image("boxes", torch.tensor([[0, 0, 3, 3], [1, 1, 8, 2]]), 2, size)
    with pytest.raises(ValueError, match=r"^boxes\[0\]\[1\] is \[1, 1, 8, 2\]: "):
        _check_boxes_per_image("boxes", [torch.tensor([[0, 0, 3, 3], [1, 1, 8, 2]])], 1, size)
    with pytest.raises(ValueError, match=r"^boxes\[0\] is \[-1, -1, -1, -1\]: .*width 8 and height 8\)$"):
        _check_boxes_per_image("boxes", torch.tensor([list(NO_BOX)]), 1, size)  # NO_BOX is no ground truth
    with pytest.raises(ValueError, match=r"boxes must have one entry per map \(2\), got 1"):
        _check_boxes_per_image("boxes", torch.tensor([[0, 0, 3, 3]]), 2, size)


def test_every_box_taking_function_gives_the_one_message() -> None:
    """box_iou, resize_boxes, the metrics' ground truth and viz.draw_boxes refuse a reversed box alike."""
    message = r"is \[5, 0, 3, 3\]: a box must be \(x0, y0, x1, y1\) with 0 <= x0 <= x1"
    image = np.zeros((8, 8, 3), np.uint8)
    calls = [
        lambda: box_iou(torch.tensor([[5, 0, 3, 3]]), torch.tensor([[0, 0, 1, 1]])),
        lambda: resize_boxes(np.array([[5, 0, 3, 3]]), (10, 10), (5, 5)),
        lambda: metrics.box_iou_curves(torch.rand(1, 8, 8), torch.tensor([[5, 0, 3, 3]])),
        lambda: viz.draw_boxes(image, [5, 0, 3, 3]),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
