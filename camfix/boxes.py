"""Boxes: camfix's one box convention, and what makes, compares, scales and checks boxes.

A box is ``(x0, y0, x1, y1)``: integer pixel indices (int64 in every result), ``x1`` and ``y1`` *inclusive* (the
last column and row of the region), so a box's area is ``(x1 - x0 + 1) * (y1 - y0 + 1)`` and a one-pixel region
has the box ``(x, y, x, y)``. A mask with no foreground pixel has no box and gives the sentinel :data:`NO_BOX`
``(-1, -1, -1, -1)``, which covers no pixel. The reference evaluator (clovaai/wsolevaluation) counts boxes the same
way, so its metadata boxes are used as they are.

- :func:`mask_to_box`: the box of the largest 8-connected region of each mask.
- :func:`box_iou`: the IoU of every pair of boxes, counted in pixels.
- :func:`resize_boxes`: boxes of an image scaled to a map of another size, by the reference evaluator's rule.
- :func:`check_boxes`: the one check of a box argument, which every box-taking function of camfix runs (so a bad
  box gets the same message everywhere); scripts can run it on boxes they read.

The same names are available as ``camfix.NO_BOX``, ``camfix.mask_to_box``, ``camfix.metrics.box_iou`` and
``camfix.metrics.resize_boxes``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from ._validation import (
    check_array,
    check_batch_or_single,
    check_dtype,
    check_size,
    check_tensor,
    describe,
    unbatch,
)

__all__ = ["NO_BOX", "mask_to_box", "box_iou", "resize_boxes", "check_boxes"]

#: The box of an empty mask: it covers no pixel, so its IoU with any box, itself included, is 0.
NO_BOX = (-1, -1, -1, -1)

#: Boxes as the drawing functions take them: one box ``(4,)`` or ``(M, 4)``, a tensor, numpy array or nested lists.
BoxesLike = Union[Tensor, np.ndarray, Sequence[int], Sequence[Sequence[int]]]
#: Ground-truth boxes of a batch of ``N`` images: an int tensor ``(N, 4)`` or ``(N, M, 4)``, or ``N`` int tensors
#: ``(M_i, 4)``.
BoxBatch = Union[Tensor, Sequence[Tensor]]

_NO_BOX_TEXT = "the no-box sentinel NO_BOX (-1, -1, -1, -1)"


# ------------------------------------------------------------------------------------------------- mask -> box


def mask_to_box(masks: Tensor) -> Tensor:
    """Box around the largest 8-connected region of each mask.

    The largest region is the one with the most pixels; among equal sizes the first in raster order of its
    top-left-most pixel wins. An empty mask gives :data:`NO_BOX`.

    Args:
        masks: ``(N, H, W)`` (``N = 0`` allowed) or one mask ``(H, W)``, bool, any device (components are
            labelled on the CPU with OpenCV).

    Returns:
        ``(N, 4)`` int64 boxes ``(x0, y0, x1, y1)``, inclusive, ``(4,)`` for one mask, on the device of ``masks``.
    """
    batch, single = check_batch_or_single(
        "masks", masks, 2, item_hint="(H, W)", floating=False, allow_empty_batch=True
    )
    check_dtype("masks", masks, torch.bool)
    return unbatch(_largest_region_boxes(batch), single)


def _largest_region_boxes(masks: Tensor) -> Tensor:
    """:func:`mask_to_box` of a checked bool batch ``(N, H, W)``: ``(N, 4)`` int64 on the device of ``masks``."""
    boxes = np.full((masks.shape[0], 4), -1, dtype=np.int64)
    # A bool tensor reinterpreted as uint8 is free; .to(torch.uint8) would copy it.
    for index, mask in enumerate(masks.cpu().contiguous().view(torch.uint8).numpy()):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        if count < 2:  # label 0 is the background
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        tied = 1 + np.flatnonzero(areas == areas.max())
        largest = int(tied[0])
        if len(tied) > 1:
            # OpenCV numbers regions in its own block scan order, not raster order; break ties by each region's
            # first pixel in raster order (rare, so the sort is paid only here).
            _, first_pixel = np.unique(labels.ravel(), return_index=True)
            largest = int(tied[np.argmin(first_pixel[tied])])
        x, y, w, h = stats[largest, :4]
        boxes[index] = (x, y, x + w - 1, y + h - 1)
    return torch.from_numpy(boxes).to(masks.device)


# ---------------------------------------------------------------------------------------------------------- IoU


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Intersection over union of every box of ``boxes_a`` with every box of ``boxes_b``, counted in pixels.

    Boxes follow camfix's convention: ``(x0, y0, x1, y1)`` integer pixel indices with ``x1``, ``y1``
    inclusive, so a box covers ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels and two boxes that share one column
    intersect in one column of pixels. ``IoU = |a & b| / (|a| + |b| - |a & b|)``, the formula of the reference
    evaluator (clovaai/wsolevaluation's ``calculate_multiple_iou``) and of the box metrics. The no-box
    sentinel :data:`NO_BOX` ``(-1, -1, -1, -1)`` (what :func:`mask_to_box` gives an empty mask) covers no pixel:
    its IoU is 0 with every box, itself included.

    The pairwise form of ``torchvision.ops.box_iou``, whose boxes are continuous (``x1`` exclusive, area
    ``(x1 - x0) * (y1 - y0)``); for IoUs of matched pairs take the diagonal, ``box_iou(a, b).diagonal()``.

    Args:
        boxes_a: ``(A, 4)`` integer tensor (any integer dtype and device) of boxes with ``0 <= x0 <= x1`` and
            ``0 <= y0 <= y1``, or :data:`NO_BOX` rows; ``A`` may be 0.
        boxes_b: ``(B, 4)``, the same.

    Returns:
        ``(A, B)`` float64 CPU tensor in ``[0, 1]``: entry ``[i, j]`` is the IoU of ``boxes_a[i]`` and
        ``boxes_b[j]`` (1 for identical boxes, 0 for disjoint ones).

    Raises:
        TypeError: an argument is not a tensor, or has a floating point, complex or bool dtype.
        ValueError: a tensor is not ``(M, 4)``, or a row is neither a valid box nor the sentinel.

    Example:
        >>> import torch
        >>> from camfix.boxes import box_iou
        >>> box_iou(torch.tensor([[0, 0, 9, 9]]), torch.tensor([[0, 0, 9, 9], [5, 0, 14, 9], [-1, -1, -1, -1]]))
        tensor([[1.0000, 0.3333, 0.0000]], dtype=torch.float64)
    """
    array_a = check_boxes("boxes_a", boxes_a, allow_no_box=True)
    array_b = check_boxes("boxes_b", boxes_b, allow_no_box=True)
    ious = _box_iou_matrix(array_a, array_b)
    # The sentinel would count as the 1-pixel box at (-1, -1): it has no pixel, so no overlap.
    ious[_no_box_rows(array_a)] = 0.0
    ious[:, _no_box_rows(array_b)] = 0.0
    return torch.from_numpy(ious)


def _box_iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``(A, B)`` float64 IoUs of valid inclusive int64 boxes ``(A, 4)`` and ``(B, 4)`` (the reference's formula).

    Unchecked, and the sentinel is not special here: the metrics' per-threshold loop calls it directly on boxes
    it made itself; :func:`box_iou` is the checked public form.
    """
    x0 = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    y0 = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    x1 = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    y1 = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    intersection = np.maximum(0, x1 - x0 + 1) * np.maximum(0, y1 - y0 + 1)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0] + 1) * (boxes_a[:, 3] - boxes_a[:, 1] + 1)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0] + 1) * (boxes_b[:, 3] - boxes_b[:, 1] + 1)
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


# ------------------------------------------------------------------------------------------------------ scaling


def resize_boxes(boxes: np.ndarray, image_size: Tuple[int, int], map_size: Tuple[int, int]) -> np.ndarray:
    """Scale inclusive boxes from an image to a map of another size, as the reference's ``resize_bbox``.

    Each coordinate becomes ``int(c * new / old)`` (float64, truncated), e.g. ``x1 = 499`` of a 500-pixel-wide
    image is column ``int(499 * 224 / 500) = 223`` of a 224-pixel map, so the boxes land inside the map. A
    :data:`NO_BOX` row stays :data:`NO_BOX`.

    Args:
        boxes: ``(M, 4)`` integer numpy array ``(x0, y0, x1, y1)``, ``M >= 0``, inside the image:
            ``0 <= x0 <= x1 < width`` and ``0 <= y0 <= y1 < height``, or :data:`NO_BOX` rows.
        image_size: ``(width, height)`` of the image the boxes refer to, positive ints.
        map_size: ``(width, height)`` of the map, positive ints.

    Returns:
        ``(M, 4)`` int64.

    Raises:
        TypeError: ``boxes`` is not an integer numpy array.
        ValueError: ``boxes`` is not ``(M, 4)`` or has a box outside the image, or a size is not two positive ints.

    Example:
        >>> import numpy as np
        >>> from camfix.boxes import resize_boxes
        >>> resize_boxes(np.array([[0, 0, 499, 374], [-1, -1, -1, -1]]), (500, 375), (224, 224)).tolist()
        [[0, 0, 223, 223], [-1, -1, -1, -1]]
    """
    width, height = check_size("image_size", image_size, order="(width, height)")
    new_width, new_height = check_size("map_size", map_size, order="(width, height)")
    array = check_boxes("boxes", boxes, kinds=(np.ndarray,), size=(height, width), allow_no_box=True)
    scale = np.array([new_width, new_height, new_width, new_height], dtype=np.float64)
    size = np.array([width, height, width, height], dtype=np.float64)
    scaled = np.trunc(array.astype(np.float64) * scale / size).astype(np.int64)
    scaled[_no_box_rows(array)] = NO_BOX
    return scaled


# ------------------------------------------------------------------------------------------------- the check


def check_boxes(
    name: str,
    boxes: object,
    *,
    kinds: Tuple[type, ...] = (Tensor,),
    size: Optional[Tuple[int, int]] = None,
    allow_no_box: bool = False,
    allow_one_box: bool = False,
) -> np.ndarray:
    """The one check of a box argument: ``(M, 4)`` integer ``(x0, y0, x1, y1)`` with ``0 <= x0 <= x1`` and
    ``0 <= y0 <= y1`` (inclusive pixel indices), optionally inside an image.

    Args:
        name: the argument's name, for the messages (a row is named ``name[i]``).
        boxes: the boxes, ``(M, 4)`` (``M = 0`` allowed), or one box ``(4,)`` with ``allow_one_box``.
        kinds: the kinds of object accepted, among ``torch.Tensor`` (integer dtype, any device), ``np.ndarray``
            (integer dtype) and ``list`` (nested lists or tuples of ints, read with ``numpy.asarray``); default
            tensors only.
        size: ``(H, W)`` of the image the boxes must lie inside (``x1 < W``, ``y1 < H``); default ``None``: no
            upper bound.
        allow_no_box: :data:`NO_BOX` rows pass (they lie in no image, but mean "no box"); default ``False``.
        allow_one_box: a single box ``(4,)`` passes, returned as ``(1, 4)``; default ``False``.

    Returns:
        The boxes as a contiguous int64 numpy array ``(M, 4)``.

    Raises:
        TypeError: ``boxes`` is of another kind, or does not hold integers (bool and floats are refused; a uint64
            value beyond int64 reads as int64's maximum, which no image reaches).
        ValueError: another shape, or a row that is not a box as above (the message names the first).

    Example:
        >>> import numpy as np
        >>> from camfix.boxes import check_boxes
        >>> check_boxes("boxes", [[0, 0, 9, 9]], kinds=(list,), size=(10, 10))
        array([[0, 0, 9, 9]])
        >>> check_boxes("boxes", [[0, 0, 10, 9]], kinds=(list,), size=(10, 10))
        Traceback (most recent call last):
        ValueError: boxes[0] is [0, 0, 10, 9]: a box must be (x0, y0, x1, y1) with 0 <= x0 <= x1 <= 9 and ...
    """
    shape_hint = "(4,) or (M, 4)" if allow_one_box else "(M, 4)"
    ranks = (1, 2) if allow_one_box else (2,)
    if isinstance(boxes, Tensor) and Tensor in kinds:
        check_tensor(name, boxes, ranks, shape_hint=shape_hint, floating=False, allow_empty=True)
        dtype: object = boxes.dtype
        floating = boxes.is_floating_point()
        integer = not (floating or boxes.is_complex() or boxes.dtype == torch.bool)
        array = boxes.detach().cpu().numpy() if integer else None
    else:
        if isinstance(boxes, (list, tuple)) and list in kinds:
            try:
                array = np.asarray(boxes)
            except ValueError:
                raise ValueError(f"{name} must be one box (x0, y0, x1, y1) or a list of them, got {boxes!r}") from None
            if array.size == 0:
                array = np.zeros((0, 4), dtype=np.int64)
        elif isinstance(boxes, np.ndarray) and np.ndarray in kinds:
            array = boxes
        else:
            names = {Tensor: "a torch.Tensor", np.ndarray: "a numpy array", list: "a list"}
            expected = " or ".join(names[kind] for kind in kinds)
            raise TypeError(
                f"{name} must be {expected} of integer boxes (x0, y0, x1, y1) of shape {shape_hint}, "
                f"got {describe(boxes)}"
            )
        check_array(name, array, ranks, shape_hint=shape_hint, allow_empty=True)
        dtype = array.dtype
        floating = np.issubdtype(array.dtype, np.floating)
        integer = array.dtype != np.bool_ and np.issubdtype(array.dtype, np.integer)
    if not integer:
        raise TypeError(
            f"{name} must hold integer pixel indices (x0, y0, x1, y1) that fit in int64, got dtype {dtype}"
            + ("; round float boxes explicitly" if floating else "")
        )
    single = array.ndim == 1
    if single:
        array = array[None]
    if array.shape[1] != 4:
        raise ValueError(f"{name} must have shape {shape_hint} (x0, y0, x1, y1), got shape {array.shape}")
    if array.dtype == np.uint64:
        # A plain cast would wrap values beyond int64 to negative ones.
        array = np.minimum(array, np.iinfo(np.int64).max)
    array = np.ascontiguousarray(array, dtype=np.int64)
    bad = _invalid_box_rows(array, size, allow_no_box)
    if bad.any():
        row = int(np.argmax(bad))
        where = name if single else f"{name}[{row}]"
        if size is None:
            rule = "0 <= x0 <= x1 and 0 <= y0 <= y1 (inclusive pixel indices)"
        else:
            height, width = size
            rule = (
                f"0 <= x0 <= x1 <= {width - 1} and 0 <= y0 <= y1 <= {height - 1} (inclusive pixel indices inside "
                f"the image of width {width} and height {height})"
            )
        raise ValueError(
            f"{where} is {array[row].tolist()}: a box must be (x0, y0, x1, y1) with {rule}"
            + (f", or {_NO_BOX_TEXT}" if allow_no_box else "")
        )
    return array


def _check_boxes_per_image(name: str, boxes: object, batch: int, size: Tuple[int, int]) -> List[np.ndarray]:
    """Ground-truth boxes of ``batch`` images of ``size = (H, W)`` as a list of int64 ``(M_i, 4)`` arrays.

    Accepts an int tensor ``(N, 4)`` (one box per image) or ``(N, M, 4)``, or a sequence of ``N`` int tensors
    ``(M_i, 4)`` (:data:`BoxBatch`). Every image needs at least one box, each inside the image
    (:func:`check_boxes`; :data:`NO_BOX` is not a ground truth).
    """
    if isinstance(boxes, Tensor):
        check_tensor(name, boxes, (2, 3), shape_hint="(N, 4) or (N, M, 4)", floating=False, allow_empty=True)
        per_image: Sequence[object] = boxes
    elif isinstance(boxes, (list, tuple)):
        per_image = boxes
    else:
        raise TypeError(
            f"{name} must be an int tensor (N, 4) or (N, M, 4) or a list of N int tensors (M_i, 4), "
            f"got {describe(boxes)}"
        )
    if len(per_image) != batch:
        raise ValueError(f"{name} must have one entry per map ({batch}), got {len(per_image)}")
    if isinstance(boxes, Tensor) and boxes.dim() == 2:
        # One box per image: one check of them all, whose messages name the image by the row.
        return list(check_boxes(name, boxes, size=size)[:, None])
    result = []
    for index, image_boxes in enumerate(per_image):
        label = f"{name}[{index}]"
        array = check_boxes(label, image_boxes, size=size)
        if len(array) == 0:
            raise ValueError(
                f"{label} must have shape (M, 4) with M >= 1 (every image needs a ground-truth box), got (0, 4)"
            )
        result.append(array)
    return result


def _invalid_box_rows(
    boxes: np.ndarray, size: Optional[Tuple[object, object]] = None, allow_no_box: bool = False
) -> np.ndarray:
    """``(M,)`` bool: which rows of int64 ``boxes`` ``(M, 4)`` are not boxes, the rule of :func:`check_boxes`.

    ``size = (H, W)`` bounds the boxes; each of ``H`` and ``W`` may be an ``(M,)`` array, one image size per row.
    ``allow_no_box`` accepts :data:`NO_BOX` rows.
    """
    x0, y0, x1, y1 = boxes.T
    bad = (x0 < 0) | (y0 < 0) | (x1 < x0) | (y1 < y0)
    if size is not None:
        height, width = size
        bad |= (x1 >= width) | (y1 >= height)
    if allow_no_box:
        bad &= ~_no_box_rows(boxes)
    return bad


def _no_box_rows(boxes: np.ndarray) -> np.ndarray:
    """``(M,)`` bool: the :data:`NO_BOX` rows of int boxes ``(M, 4)``."""
    return (boxes == -1).all(axis=1)
