"""Readers for the reference evaluator's metadata (clovaai/wsolevaluation ``metadata/<dataset>/<split>/``).

One folder per split, comma-separated text files, one record per line:

- ``image_ids.txt``: ``image_id`` (a relative image path, e.g. ``val/ILSVRC2012_val_00000001.JPEG``);
- ``class_labels.txt``: ``image_id,class_index``;
- ``image_sizes.txt``: ``image_id,width,height`` (box datasets: ILSVRC, CUB);
- ``localization.txt``: ``image_id,x0,y0,x1,y1``, one line per box (ILSVRC, CUB), or
  ``image_id,mask_path,ignore_path``, one line per instance mask with the ignore path on the image's first line
  only (OpenImages).

Boxes in ``localization.txt`` are integer pixel indices of the original image with ``x1``, ``y1`` inclusive (the
reference counts areas as ``(x1 - x0 + 1) * (y1 - y0 + 1)`` and checks ``x1 <= width - 1``): camfix's own box
convention (:mod:`camfix.boxes`), so they are used as they are. The reference evaluates 224 x 224 maps and scales the
boxes to them with :func:`camfix.boxes.resize_boxes`, truncating the scaled coordinates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

from .._validation import check_size, describe
from ..boxes import _invalid_box_rows
from ..cli_support import read_text_lines

__all__ = ["WSOLMetadata", "read_metadata", "load_mask"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class WSOLMetadata:
    """The metadata of one split.

    Attributes:
        folder: where it was read from.
        image_ids: image ids in file order.
        class_labels: ``image_id -> class index``.
        image_sizes: ``image_id -> (width, height)`` (empty for mask datasets).
        boxes: ``image_id -> (M, 4)`` int64 inclusive boxes in original image pixels (empty for mask datasets).
        mask_paths: ``image_id -> instance mask paths`` relative to the mask root (empty for box datasets).
        ignore_paths: ``image_id -> ignore mask path`` (``""``: none).
    """

    folder: Path
    image_ids: Tuple[str, ...]
    class_labels: Dict[str, int]
    image_sizes: Dict[str, Tuple[int, int]]
    boxes: Dict[str, np.ndarray]
    mask_paths: Dict[str, Tuple[str, ...]]
    ignore_paths: Dict[str, str]

    @property
    def kind(self) -> str:
        """``"boxes"`` (ILSVRC, CUB) or ``"masks"`` (OpenImages)."""
        return "masks" if self.mask_paths else "boxes"


def _records(path: Path, fields: Tuple[int, ...]) -> List[Tuple[int, List[str]]]:
    """Non-empty lines of ``path`` split on commas, each with one of the allowed numbers of fields."""
    if not path.is_file():
        raise FileNotFoundError(
            f"metadata file {path} does not exist" + (" (it is a folder)" if path.exists() else "")
        )
    records = []
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line:
            continue
        parts = line.split(",")
        if len(parts) not in fields:
            expected = " or ".join(map(str, fields))
            raise ValueError(f"{path}:{number}: expected {expected} comma-separated fields, got {line!r}")
        records.append((number, parts))
    return records


def _integers(path: Path, number: int, values: List[str]) -> List[int]:
    try:
        return [int(value) for value in values]
    except ValueError:
        raise ValueError(f"{path}:{number}: expected integers, got {','.join(values)!r}") from None


def read_metadata(folder: PathLike) -> WSOLMetadata:
    """Read a split folder of the reference evaluator's metadata (see the module docstring).

    Every image id must have a class label and at least one localization line, and a box dataset an image size;
    boxes must lie inside their image with ``x0 <= x1``, ``y0 <= y1``.

    Args:
        folder: the split folder, e.g. ``metadata/ILSVRC/test``, holding ``image_ids.txt``, ``class_labels.txt``,
            ``localization.txt`` and, for a box dataset, ``image_sizes.txt``.

    Returns:
        A :class:`WSOLMetadata`: boxes (ILSVRC, CUB) or mask paths (OpenImages), per image id in file order.

    Raises:
        TypeError: ``folder`` is not a path.
        FileNotFoundError: the folder or a required file is missing.
        ValueError: a file is not UTF-8 text, is malformed or is inconsistent with the others; the message names
            the file and line.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got {describe(folder)}")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"folder must be a metadata split folder, got {str(root)!r} ({'a file' if root.exists() else 'missing'})"
        )
    ids_file = root / "image_ids.txt"
    image_ids = tuple(parts[0] for _, parts in _records(ids_file, (1,)))
    if not image_ids:
        raise ValueError(f"{ids_file} lists no image")
    if len(set(image_ids)) != len(image_ids):
        raise ValueError(f"{ids_file} lists an image id twice")

    labels_file = root / "class_labels.txt"
    class_labels: Dict[str, int] = {}
    for number, (image_id, label) in _records(labels_file, (2,)):
        class_labels[image_id] = _integers(labels_file, number, [label])[0]
        if class_labels[image_id] < 0:
            raise ValueError(f"{labels_file}:{number}: expected a class index >= 0, got {label!r}")

    localization_file = root / "localization.txt"
    localization = _records(localization_file, (3, 5))
    boxes: Dict[str, List[List[int]]] = {}
    mask_paths: Dict[str, List[str]] = {}
    ignore_paths: Dict[str, str] = {}
    for number, parts in localization:
        image_id = parts[0]
        if len(parts) == 5:
            boxes.setdefault(image_id, []).append(_integers(localization_file, number, parts[1:]))
        elif image_id in mask_paths:
            if parts[2]:
                raise ValueError(
                    f"{localization_file}:{number}: only an image's first mask line may name an ignore mask"
                )
            mask_paths[image_id].append(parts[1])
        else:
            mask_paths[image_id] = [parts[1]]
            ignore_paths[image_id] = parts[2]
    if boxes and mask_paths:
        raise ValueError(f"{localization_file} mixes box lines (5 fields) and mask lines (3 fields)")

    image_sizes: Dict[str, Tuple[int, int]] = {}
    if boxes:
        sizes_file = root / "image_sizes.txt"
        for number, parts in _records(sizes_file, (3,)):
            width, height = _integers(sizes_file, number, parts[1:])
            image_sizes[parts[0]] = (width, height)

    required = [("class label", class_labels, labels_file)]
    required.append(("localization line", boxes if boxes else mask_paths, localization_file))
    if boxes:
        required.append(("image size", image_sizes, root / "image_sizes.txt"))
    for name, table, file in required:
        missing = [image_id for image_id in image_ids if image_id not in table]
        if missing:
            raise ValueError(
                f"{file} has no {name} for {len(missing)} image(s) listed in {ids_file}, e.g. {missing[0]!r}"
            )
    box_arrays = {image_id: np.array(values, dtype=np.int64) for image_id, values in boxes.items()}
    if box_arrays:
        # One vectorised check of all boxes against their image's size.
        owners = [image_id for image_id, values in boxes.items() for _ in values]
        width, height = np.array([image_sizes.get(image_id, (0, 0)) for image_id in owners]).T
        bad = _invalid_box_rows(np.concatenate(list(box_arrays.values())), (height, width))
        if bad.any():
            image_id = owners[int(np.argmax(bad))]
            raise ValueError(
                f"{localization_file}: image {image_id!r} of size {image_sizes.get(image_id)} (width, height) has "
                f"a box outside it or with x1 < x0 / y1 < y0: {box_arrays[image_id].tolist()}"
            )
    return WSOLMetadata(
        folder=root,
        image_ids=image_ids,
        class_labels=class_labels,
        image_sizes=image_sizes,
        boxes=box_arrays,
        mask_paths={key: tuple(value) for key, value in mask_paths.items()},
        ignore_paths=ignore_paths,
    )


def _read_mask(path: Path, size: Tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} does not exist" + (" (it is a folder)" if path.exists() else ""))
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"mask {path} is not an image OpenCV can read (truncated, or another format)")
    # The reference's load_mask_image: float32, nearest-neighbour resize to (width, height), then > 0.5.
    height, width = size
    return cv2.resize(np.float32(image), (width, height), interpolation=cv2.INTER_NEAREST) > 0.5


def load_mask(
    mask_root: PathLike, mask_paths: Sequence[str], ignore_path: str, size: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray]:
    """Ground-truth foreground and ignore region of one image at the map's ``size = (H, W)``.

    As the reference's ``get_mask``: the union of the instance masks, and the ignore mask minus the foreground
    (an empty ``ignore_path`` means no ignore region). Each mask file is read as 8-bit grey, resized
    nearest-neighbour to ``size`` and thresholded at ``> 0.5`` (any non-zero pixel), as the reference's
    ``load_mask_image``.

    Args:
        mask_root: the folder the mask paths are relative to (e.g. ``dataset/OpenImages``).
        mask_paths: the image's instance mask files, relative to ``mask_root`` (its entry of
            :class:`WSOLMetadata`'s ``mask_paths``).
        ignore_path: the image's ignore mask file relative to ``mask_root``, or ``""`` for none (its entry of
            ``ignore_paths``).
        size: ``(H, W)`` of the map the masks are compared with.

    Returns:
        ``(foreground, ignore)``, bool ``(H, W)`` arrays; ``ignore`` excludes the foreground.

    Raises:
        TypeError: an argument has the wrong type (``mask_paths`` a single string, say).
        ValueError: ``size`` is not two positive ints, ``mask_paths`` is empty, or a mask file is not an image.
        FileNotFoundError: a mask file is missing.
    """
    if not isinstance(mask_root, (str, os.PathLike)):
        raise TypeError(f"mask_root must be a path (str or os.PathLike), got {describe(mask_root)}")
    if not isinstance(mask_paths, (tuple, list)) or not all(isinstance(path, str) for path in mask_paths):
        raise TypeError(f"mask_paths must be a tuple of str (relative mask paths), got {mask_paths!r}")
    if not mask_paths:
        raise ValueError("mask_paths must name at least one mask file (an image's instance masks), got none")
    if not isinstance(ignore_path, str):
        raise TypeError(f"ignore_path must be a str (\"\" for none), got {describe(ignore_path)}")
    size = check_size("size", size)
    root = Path(mask_root)
    foreground = np.zeros(size, dtype=bool)
    for mask_path in mask_paths:
        foreground |= _read_mask(root / mask_path, size)
    ignore = _read_mask(root / ignore_path, size) & ~foreground if ignore_path else np.zeros(size, dtype=bool)
    return foreground, ignore
