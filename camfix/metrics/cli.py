"""``camfix evaluate``: score saved maps against the reference evaluator's metadata.

Maps are read as clovaai/wsolevaluation saves and reads them: one ``.npy`` per image at
``<scoremaps>/<image_id>.npy`` (e.g. ``scoremaps/val/ILSVRC2012_val_00000001.JPEG.npy``), a 2-D float array in
``[0, 1]``. A box dataset (ILSVRC, CUB) gives MaxBoxAcc, MaxBoxAccV2 and GT-known loc (top-1 loc too with
``--predictions``); a mask dataset (OpenImages) gives PxAP and Peak IoU. Ground truth is brought to each map's
size as the reference does (boxes scaled and truncated, masks resized nearest-neighbour).

A typical call is ``camfix evaluate --scoremaps train_log/scoremaps --metadata metadata/ILSVRC/test --json
result.json``; ``camfix evaluate --help`` lists the options, ``docs/metrics.md`` shows more.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..boxes import resize_boxes
from ..cli_support import InputError, atomic_write, check_int, check_number, check_output_path, read_text_lines
from ._common import DEFAULT_INTERVAL, MIN_INTERVAL, MODES, cam_thresholds
from .localization import DEFAULT_IOU_THRESHOLDS, BoxAccuracy, check_iou_thresholds
from .masks import PeakIoU, PxAP
from .metadata import WSOLMetadata, load_mask, read_metadata

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``camfix evaluate`` to ``parser`` (the subcommand's parser of ``camfix``)."""
    parser.add_argument("--scoremaps", required=True, type=Path, help="folder of <image_id>.npy score maps")
    parser.add_argument(
        "--metadata", required=True, type=Path, help="split folder with image_ids.txt, localization.txt, ..."
    )
    parser.add_argument("--mask-root", type=Path, help="root of the mask files (mask datasets, e.g. OpenImages)")
    parser.add_argument("--mode", choices=MODES, default="reference", help="default: %(default)s")
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help=f"CAM threshold step in [{MIN_INTERVAL:g}, 1] (default: %(default)s)",
    )
    parser.add_argument(
        "--iou-thresholds",
        type=int,
        nargs="+",
        default=list(DEFAULT_IOU_THRESHOLDS),
        help="IoU thresholds in percent for MaxBoxAccV2 (default: %(default)s)",
    )
    parser.add_argument(
        "--predictions", type=Path, help="image_id,class lines of top-1 predictions, for top-1 loc (boxes only)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="maps per update (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _existing(option: str, path: Path, folder: bool) -> Path:
    """``path`` if it is an existing folder (``folder``) or file, else an :class:`InputError` naming ``option``."""
    if path.is_dir() if folder else path.is_file():
        return path
    state = ("a file" if folder else "a folder") if path.exists() else "missing"
    raise InputError(f"{option} must be an existing {'folder' if folder else 'file'}, got {str(path)!r} ({state})")


def _load_map(folder: Path, image_id: str) -> np.ndarray:
    """The score map of ``image_id``: a 2-D float array with finite values in ``[0, 1]``, as float32 or float64."""
    path = folder / f"{image_id}.npy"
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"score map {path} for image {image_id!r} does not exist") from None
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"score map {path} is not a readable .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"score map {path} must hold one array (np.save), got an .npz archive")
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        raise InputError(
            f"score map {path} must be a non-empty 2-D float array, got {array.dtype} of shape {array.shape}"
        )
    # Native byte order and a dtype torch knows: float16 becomes float32 and long double float64, both exactly
    # enough for values in [0, 1].
    array = array.astype(np.float64 if array.dtype.itemsize > 4 else np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        raise InputError(f"score map {path} must be finite, got {int((~finite).sum())} NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise InputError(
            f"score map {path} must have values in [0, 1] (min-max normalised), got values in "
            f"[{array.min():g}, {array.max():g}]"
        )
    return array


def _read_predictions(path: Path, image_ids: Tuple[str, ...]) -> Dict[str, int]:
    predictions: Dict[str, int] = {}
    try:
        lines = read_text_lines(_existing("--predictions", path, folder=False))
    except ValueError as error:
        raise InputError(str(error)) from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        image_id, _, label = line.rpartition(",")
        try:
            predicted_class = int(label)
        except ValueError:
            raise InputError(f"{path}:{number}: expected 'image_id,class', got {line!r}") from None
        if not image_id or predicted_class < 0:
            raise InputError(f"{path}:{number}: expected 'image_id,class' with a class >= 0, got {line!r}")
        if image_id in predictions:
            raise InputError(f"{path}:{number}: a second prediction for image {image_id!r}")
        predictions[image_id] = predicted_class
    missing = [image_id for image_id in image_ids if image_id not in predictions]
    if missing:
        raise InputError(f"{path} has no prediction for {len(missing)} image(s), e.g. {missing[0]!r}")
    return predictions


def _batches(image_ids: Tuple[str, ...], folder: Path, batch_size: int) -> Iterator[Tuple[List[str], np.ndarray]]:
    """Consecutive maps of the same size and dtype, stacked into ``(N, H, W)`` batches."""
    ids: List[str] = []
    maps: List[np.ndarray] = []
    for image_id in image_ids:
        array = _load_map(folder, image_id)
        if maps and (array.shape != maps[0].shape or array.dtype != maps[0].dtype or len(maps) == batch_size):
            yield ids, np.stack(maps)
            ids, maps = [], []
        ids.append(image_id)
        maps.append(array)
    if maps:
        yield ids, np.stack(maps)


def _check_inputs(args: argparse.Namespace) -> Tuple[WSOLMetadata, np.ndarray, Optional[Dict[str, int]]]:
    """Every option and input file that can be checked before the first map is evaluated.

    Returns the metadata, the CAM thresholds and the top-1 predictions (``None`` without ``--predictions``).
    """
    check_int("--batch-size", args.batch_size, 1)
    check_number("--interval", args.interval, MIN_INTERVAL, 1.0)
    check_iou_thresholds(tuple(args.iou_thresholds), "--iou-thresholds")
    if args.json is not None:
        check_output_path("--json", args.json)
    _existing("--scoremaps", args.scoremaps, folder=True)
    metadata = read_metadata(_existing("--metadata", args.metadata, folder=True))
    if metadata.kind == "masks":
        if args.mask_root is None:
            raise InputError(f"{metadata.folder} describes masks: give their folder with --mask-root")
        _existing("--mask-root", args.mask_root, folder=True)
        if args.predictions is not None:
            raise InputError("--predictions (top-1 loc) needs a box dataset, but --metadata describes masks")
    missing = [i for i in metadata.image_ids if not (args.scoremaps / f"{i}.npy").is_file()]
    if missing:
        raise InputError(
            f"--scoremaps {args.scoremaps} lacks the score maps of {len(missing)} of {len(metadata.image_ids)} "
            f"images, e.g. {str(args.scoremaps / missing[0])}.npy"
        )
    predictions = None if args.predictions is None else _read_predictions(args.predictions, metadata.image_ids)
    return metadata, cam_thresholds(args.interval), predictions


def _evaluate(
    args: argparse.Namespace,
    metadata: WSOLMetadata,
    thresholds: np.ndarray,
    predictions: Optional[Dict[str, int]],
) -> Dict[str, object]:
    if metadata.kind == "boxes":
        metrics: Dict[str, object] = {"boxes": BoxAccuracy(thresholds, tuple(args.iou_thresholds), args.mode)}
    else:
        metrics = {"pxap": PxAP(thresholds, args.mode), "peak_iou": PeakIoU()}
    progress = tqdm(
        total=len(metadata.image_ids), unit="map", disable=True if args.no_progress else None, file=sys.stderr
    )
    try:
        for ids, stack in _batches(metadata.image_ids, args.scoremaps, args.batch_size):
            maps = torch.from_numpy(stack)
            height, width = stack.shape[1:]
            if metadata.kind == "boxes":
                boxes = [
                    torch.from_numpy(resize_boxes(metadata.boxes[i], metadata.image_sizes[i], (width, height)))
                    for i in ids
                ]
                classes = None
                if predictions is not None:
                    classes = (
                        torch.tensor([predictions[i] for i in ids]),
                        torch.tensor([metadata.class_labels[i] for i in ids]),
                    )
                metrics["boxes"].update(maps, boxes, *(classes or ()))  # type: ignore[attr-defined]
            else:
                pairs = [
                    load_mask(args.mask_root, metadata.mask_paths[i], metadata.ignore_paths[i], (height, width))
                    for i in ids
                ]
                masks = torch.from_numpy(np.stack([pair[0] for pair in pairs]))
                ignore = torch.from_numpy(np.stack([pair[1] for pair in pairs]))
                for metric in metrics.values():
                    metric.update(maps, masks, ignore)  # type: ignore[attr-defined]
            progress.update(len(ids))
    finally:
        progress.close()
    results: Dict[str, object] = {}
    for metric in metrics.values():
        results.update(metric.compute().as_dict())  # type: ignore[attr-defined]
    return results


def _table(results: Dict[str, object]) -> str:
    rows = []
    for key, value in results.items():
        if isinstance(value, dict):
            rows.extend((f"{key}@{inner}", entry) for inner, entry in value.items())
        else:
            rows.append((key, value))
    width = max(len(key) for key, _ in rows)
    return "\n".join(
        f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}"
        for key, value in rows
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table and write the JSON file; returns 0.

    Every option, input file and the ``--json`` path are checked before the first map is evaluated; ``--json``
    is written atomically. Bad input raises (:class:`~camfix.cli_support.InputError`, ``ValueError``,
    ``TypeError`` or ``OSError``, each naming the option or file), which ``camfix`` reports as one line with
    exit status 2.
    """
    metadata, thresholds, predictions = _check_inputs(args)
    results = _evaluate(args, metadata, thresholds, predictions)
    print(f"{metadata.folder} ({len(metadata.image_ids)} images, mode {args.mode}, interval {args.interval})")
    print(_table(results))
    if args.json is not None:
        payload: Dict[str, object] = {
            "metadata": str(args.metadata),
            "scoremaps": str(args.scoremaps),
            "mode": args.mode,
            "interval": args.interval,
            "results": results,
        }
        with atomic_write(args.json) as stream:
            stream.write((json.dumps(payload, indent=2) + "\n").encode("utf-8"))
        logger.info("wrote %s", args.json)
    return 0
