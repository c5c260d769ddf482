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
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ._common import DEFAULT_INTERVAL, MODES, cam_thresholds
from .localization import DEFAULT_IOU_THRESHOLDS, BoxAccuracy
from .masks import PeakIoU, PxAP
from .metadata import WSOLMetadata, load_mask, read_metadata, resize_boxes

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
        "--interval", type=float, default=DEFAULT_INTERVAL, help="CAM threshold step (default: %(default)s)"
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


class CliError(Exception):
    """A problem with the command's inputs, reported as one line."""


def _load_map(folder: Path, image_id: str) -> np.ndarray:
    path = folder / f"{image_id}.npy"
    if not path.is_file():
        raise CliError(f"score map {path} for image {image_id!r} does not exist")
    array = np.load(path)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise CliError(f"score map {path} must be a 2-D float array, got {array.dtype} of shape {array.shape}")
    return array


def _read_predictions(path: Path, image_ids: Tuple[str, ...]) -> Dict[str, int]:
    predictions: Dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            image_id, _, label = line.rpartition(",")
            try:
                predictions[image_id] = int(label)
            except ValueError:
                raise CliError(f"{path}:{number}: expected 'image_id,class', got {line!r}") from None
    missing = [image_id for image_id in image_ids if image_id not in predictions]
    if missing:
        raise CliError(f"{path} has no prediction for {len(missing)} image(s), e.g. {missing[0]!r}")
    return predictions


def _batches(image_ids: Tuple[str, ...], folder: Path, batch_size: int) -> Iterator[Tuple[List[str], np.ndarray]]:
    """Consecutive maps of the same size, stacked into ``(N, H, W)`` batches."""
    ids: List[str] = []
    maps: List[np.ndarray] = []
    for image_id in image_ids:
        array = _load_map(folder, image_id)
        if maps and (array.shape != maps[0].shape or len(maps) == batch_size):
            yield ids, np.stack(maps)
            ids, maps = [], []
        ids.append(image_id)
        maps.append(array)
    if maps:
        yield ids, np.stack(maps)


def _evaluate(args: argparse.Namespace, metadata: WSOLMetadata) -> Dict[str, object]:
    thresholds = cam_thresholds(args.interval)
    predictions = None
    if args.predictions is not None:
        if metadata.kind != "boxes":
            raise CliError("--predictions (top-1 loc) needs a box dataset")
        predictions = _read_predictions(args.predictions, metadata.image_ids)
    if metadata.kind == "masks" and args.mask_root is None:
        raise CliError(f"{metadata.folder} describes masks: give their folder with --mask-root")
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
    """Evaluate, print the table, write JSON; 0 on success, 2 on bad inputs (with a one-line message)."""
    try:
        if args.batch_size < 1:
            raise CliError(f"--batch-size must be >= 1, got {args.batch_size}")
        metadata = read_metadata(args.metadata)
        results = _evaluate(args, metadata)
    except (CliError, FileNotFoundError, ValueError, TypeError) as error:
        print(f"camfix evaluate: error: {error}", file=sys.stderr)
        return 2
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
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        logger.info("wrote %s", args.json)
    return 0

