#!/usr/bin/env python3
"""LID 2020 Track 1 (weakly supervised semantic segmentation) with a single-class classifier: mIoU and label PNGs.

    python examples/imagenet/evaluate_wsss.py --images /data/lid_track1/val --list /data/lid_track1/val.txt \\
        --labels /data/lid_track1/val_labels --checkpoint runs/track1/last.pth --crf --out runs/track1_val

    torchrun --nproc_per_node 8 examples/imagenet/evaluate_wsss.py ...   (same options; same number)

The paper's Track 1 variant: a classifier trained on one class per image (``train.py --train-list``) predicts
the segmentation of one class per image. Per image: the map of the top-1 predicted class ``c`` (CAM with NWC,
min-max, PaS), refined by a two-label dense CRF (``--crf``: object where the refined probability is above 0.5;
without it: where the PaS-normalised map is above ``--theta-loc``, the PaS threshold), resized to the image's
size; the object pixels get label ``c + --label-offset`` (1: label 0 is background), the rest 0. The mIoU is
the mean over classes, background included, of the IoU from the confusion matrix accumulated over all pixels of
the set (``camfix.metrics.MeanIoU``, ground-truth label 255 ignored).

Inputs: ``--list`` has one image per line (path relative to ``--images``); the ground truth of ``a/b.JPEG`` is
``LABELS/a/b.png``, a single-channel or palette PNG of labels. Outputs in ``--out``: ``metrics.json`` and
``segmentations/a/b.png`` (8-bit labels at the image's size).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from camfix.cli_support import InputError, check_int, check_number
from camfix.metrics import IGNORE_INDEX, MeanIoU
from camfix.thresholds import DEFAULT_THETA_LOC

from command_line import run_main
from data import ground_truth_paths, read_image_list, read_label_map
from distributed import DistributedContext, distributed, setup_logging
from evaluation import (
    add_evaluation_arguments,
    check_evaluation_arguments,
    evaluation_batches,
    load_evaluation_model,
    to_image_size,
    write_json,
    write_png,
)

logger = logging.getLogger("camfix.imagenet.evaluate_wsss")

#: The object probability above which the two-label CRF assigns a pixel to the object (its argmax).
CRF_OBJECT_PROBABILITY = 0.5


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--images", type=Path, required=True, help="folder the --list paths are relative to")
    data.add_argument("--list", type=Path, required=True, help="one image per line (extra fields are ignored)")
    data.add_argument("--labels", type=Path, required=True, help="ground truth: LABELS/<path with .png>, label per pixel")
    data.add_argument("--label-offset", type=int, default=1, help="segmentation label of classifier class c is c + OFFSET")
    data.add_argument("--theta-loc", type=float, default=DEFAULT_THETA_LOC, help="without --crf: object where the PaS map > THETA")
    data.add_argument("--no-maps", action="store_true", help="do not write the segmentation PNGs")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_evaluation_arguments(parser, args)
    try:
        check_int("--label-offset", args.label_offset, 0)
        check_number("--theta-loc", args.theta_loc, 0.0, 1.0)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    images = [path for path, _ in read_image_list(args.list, args.images, arguments=("--list", "--images"))]
    truths = ground_truth_paths(images, args.images, args.labels, "--labels")
    model, fields = load_evaluation_model(args)
    num_labels = fields["num_classes"] + args.label_offset
    if num_labels > IGNORE_INDEX:
        raise InputError(f"{fields['num_classes']} classes + --label-offset {args.label_offset} do not fit 8-bit labels below {IGNORE_INDEX}")
    with distributed(args.device) as context:
        setup_logging(context, args.out / "evaluate_wsss.log")
        evaluate(model, fields, images, truths, num_labels, args, context)


def evaluate(
    model: torch.nn.Module,
    fields: Dict[str, Any],
    images: List[Path],
    truths: List[Path],
    num_labels: int,
    args: argparse.Namespace,
    context: DistributedContext,
) -> None:
    """Accumulate this rank's confusion matrix, sum it over ranks, and (rank 0) write the results."""
    metric = MeanIoU(num_labels)
    cut = CRF_OBJECT_PROBABILITY if args.crf else args.theta_loc
    for indices, maps, classes, _, sizes in evaluation_batches(model, images, None, args, context, "LID Track 1"):
        for index, saliency, label, (height, width) in zip(indices, maps, classes.tolist(), sizes):
            truth = read_label_map(truths[index])
            if truth.shape != (height, width):
                logger.warning("ground truth %s is %dx%d but its image %dx%d: the map is resized to the ground truth",
                               truths[index], *truth.shape, height, width)
            segmentation = segment(to_image_size(saliency, *truth.shape), label + args.label_offset, cut)
            try:
                metric.update(segmentation[None], torch.from_numpy(truth)[None])
            except ValueError as error:
                raise InputError(f"ground truth {truths[index]}: {error}") from None
            if not args.no_maps:
                picture = segmentation if truth.shape == (height, width) else segment(to_image_size(saliency, height, width), label + args.label_offset, cut)
                write_png(args.out / "segmentations" / images[index].relative_to(args.images).with_suffix(".png"), picture)
    result = metric.sync().compute()
    if context.is_main:
        record = {
            **result.as_dict(), "images": len(images), "label_offset": args.label_offset, "crf": args.crf,
            "theta_loc": None if args.crf else args.theta_loc, "nwc": not args.no_nwc, "pct": args.pct,
            "size": args.size, "checkpoint": str(args.checkpoint), **fields,
        }
        write_json(args.out / "metrics.json", record)
        logger.info("mIoU %.2f%% over %d images (%d labels, background included); wrote %s", result.miou, len(images),
                    num_labels, args.out / "metrics.json")


def segment(saliency: torch.Tensor, label: int, cut: float) -> torch.Tensor:
    """uint8 ``(H, W)`` label map: ``label`` where ``saliency`` (``(H, W)`` in ``[0, 1]``) is above ``cut``, else 0."""
    return torch.where(saliency > cut, label, 0).to(torch.uint8)


if __name__ == "__main__":
    run_main(main)
