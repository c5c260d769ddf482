#!/usr/bin/env python3
"""ImageNet WSOL box metrics of a trained classifier: MaxBoxAccV2, MaxBoxAcc / GT-known loc, top-1 loc.

    python examples/imagenet/evaluate_wsol.py --metadata wsolevaluation/metadata/ILSVRC/test \\
        --images /data/imagenet --checkpoint runs/seresnet50_tap/last.pth --out runs/wsol_val

    torchrun --nproc_per_node 8 examples/imagenet/evaluate_wsol.py ...   (same options; same numbers)

``--metadata`` is a split folder of the reference evaluator (clovaai/wsolevaluation): ``image_ids.txt``,
``class_labels.txt``, ``image_sizes.txt`` and ``localization.txt`` (its ``ILSVRC/test`` is the 50,000-image
ImageNet validation set); the image ids are paths relative to ``--images``.

Per image: the map of the ground-truth class (CAM with NWC, min-max, PaS, optional dense CRF) at ``SIZE x SIZE``,
the ground-truth boxes scaled to that size as the reference does (``camfix.boxes.resize_boxes``), and
``camfix.metrics.BoxAccuracy``: the CAM thresholds ``arange(0, 1, --interval)``; MaxBoxAccV2 (any region's box,
IoU 30/50/70, averaged), MaxBoxAcc = GT-known loc (largest region, IoU 50, best threshold) and top-1 loc (also
the top-1 class right, at that threshold). ``--mode reference`` (default) gives the reference evaluator's numbers
bit for bit; ``continuous`` drops its quantisation quirks. Results in percent, in ``OUT/metrics.json``.

Sharded over torchrun ranks (rank r takes images r, r + world_size, ...); the per-threshold counts are summed over
ranks, so the numbers are those of one process.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from camfix.boxes import resize_boxes
from camfix.cli_support import InputError, check_number
from camfix.metrics import DEFAULT_INTERVAL, MIN_INTERVAL, MODES, BoxAccuracy, cam_thresholds
from camfix.metrics import check_iou_thresholds
from camfix.metrics.metadata import WSOLMetadata, read_metadata

from command_line import run_main
from distributed import DistributedContext, cpus_per_rank, distributed, setup_logging
from evaluation import (
    add_evaluation_arguments,
    check_evaluation_arguments,
    evaluation_batches,
    load_evaluation_model,
    write_json,
)

logger = logging.getLogger("camfix.imagenet.evaluate_wsol")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--metadata", type=Path, required=True, help="reference-evaluator split folder (e.g. metadata/ILSVRC/test)")
    data.add_argument("--images", type=Path, required=True, help="folder the image ids are relative to")
    metric = parser.add_argument_group("metric")
    metric.add_argument("--mode", choices=MODES, default="reference", help="reference: identical to clovaai/wsolevaluation")
    metric.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="CAM threshold step (reference command line: 0.01)")
    metric.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70], help="MaxBoxAccV2's IoU thresholds in percent")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_evaluation_arguments(parser, args)
    try:
        check_number("--interval", args.interval, MIN_INTERVAL, 1.0)
        check_iou_thresholds(tuple(args.iou_thresholds), "--iou-thresholds")
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return args


def load_metadata(folder: Path, images: Path) -> WSOLMetadata:
    """The split's metadata; every listed image must exist under ``images`` and the dataset must have boxes."""
    try:
        metadata = read_metadata(folder)
    except (OSError, ValueError) as error:
        raise InputError(f"--metadata {folder}: {error}") from None
    if metadata.kind != "boxes":
        raise InputError(f"--metadata {folder} has masks (OpenImages); evaluate_wsol.py evaluates box datasets (ILSVRC, CUB)")
    if not images.is_dir():
        raise InputError(f"--images must be an existing folder, got {str(images)!r}")
    missing = [image_id for image_id in metadata.image_ids if not (images / image_id).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(metadata.image_ids)} images of {folder} are not under {images}: "
            f"{', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
        )
    return metadata


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    metadata = load_metadata(args.metadata, args.images)
    model, fields = load_evaluation_model(args)
    labels = torch.tensor([metadata.class_labels[image_id] for image_id in metadata.image_ids])
    if int(labels.max()) >= fields["num_classes"]:
        raise InputError(f"{args.metadata} has class {int(labels.max())}, but the model has {fields['num_classes']} classes")
    with distributed(args.device) as context:
        setup_logging(context, args.out / "evaluate_wsol.log")
        evaluate(model, fields, metadata, labels, args, context)


def evaluate(
    model: torch.nn.Module,
    fields: Dict[str, Any],
    metadata: WSOLMetadata,
    labels: torch.Tensor,
    args: argparse.Namespace,
    context: DistributedContext,
) -> None:
    """Accumulate this rank's share, sum the counts over ranks, and (rank 0) write the results."""
    metric = BoxAccuracy(cam_thresholds(args.interval), tuple(args.iou_thresholds), args.mode, workers=cpus_per_rank())
    paths = [args.images / image_id for image_id in metadata.image_ids]
    correct_classes = 0
    for indices, maps, _, logits, sizes in evaluation_batches(model, paths, labels, args, context, "ImageNet WSOL"):
        boxes: List[torch.Tensor] = []
        for index, (height, width) in zip(indices, sizes):
            image_id = metadata.image_ids[index]
            if metadata.image_sizes[image_id] != (width, height):
                logger.warning("%s is %dx%d (width x height) but its metadata says %s", image_id, width, height, metadata.image_sizes[image_id])
            scaled = resize_boxes(metadata.boxes[image_id], metadata.image_sizes[image_id], (args.size, args.size))
            boxes.append(torch.from_numpy(scaled))
        predictions = logits.argmax(dim=1).cpu()
        targets = labels[indices]
        metric.update(maps.cpu(), boxes, predictions, targets)
        correct_classes += int((predictions == targets).sum())
    result = metric.sync().compute()
    correct_classes = sum(context.all_gather_object(correct_classes))
    if context.is_main:
        record = {
            **result.as_dict(), "top1_cls": 100.0 * correct_classes / result.num_images, "mode": args.mode,
            "interval": args.interval, "nwc": not args.no_nwc, "pct": args.pct, "crf": args.crf, "size": args.size,
            "checkpoint": str(args.checkpoint), **fields,
        }
        write_json(args.out / "metrics.json", record)
        logger.info(
            "MaxBoxAccV2 %.2f, GT-known loc %.2f (threshold %.3f), top-1 loc %.2f, top-1 cls %.2f over %d images; wrote %s",
            result.max_box_acc_v2, result.gt_known_loc, result.best_threshold, result.top1_loc, record["top1_cls"],
            result.num_images, args.out / "metrics.json",
        )


if __name__ == "__main__":
    run_main(main)
