#!/usr/bin/env python3
"""LID 2020 Track 3 validation: saliency maps of a trained classifier, their Peak IoU, and the submission PNGs.

    python examples/imagenet/evaluate_lid.py --images /data/lid/val --list /data/lid/val.txt \\
        --masks /data/lid/val_mask --checkpoint runs/seresnet50_tap/last.pth --crf --out runs/lid_val

    torchrun --nproc_per_node 8 examples/imagenet/evaluate_lid.py ...   (same options; same number)

Per image: the class activation map of the top-1 predicted class (``--gt-known``: the class in the list) with
negative weight clamping (NWC), min-max normalised, divided by its 98th percentile and clipped (PaS), refined by a
dense CRF (``--crf``), resized to the image's size and quantised to 8 bits. The Peak IoU sweeps the thresholds
0..255 (foreground: ``map > t``), accumulates intersections and unions over the whole set per threshold, and takes
the maximum of that IoU curve.

Inputs: ``--list`` has one image per line, ``path [class]`` (path relative to ``--images``); the mask of
``a/b.JPEG`` is ``MASKS/a/b.png`` (non-zero pixels are the object). Outputs in ``--out``: ``metrics.json``,
``iou_curve.png`` and ``maps/a/b.png``, the submission form: one 8-bit grey PNG per image, at the image's size,
0..255 from background to object.

Sharded over torchrun ranks (rank r takes images r, r + world_size, ...); the intersection and union counts are
summed over ranks, so the number is that of one process.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from camfix.cli_support import InputError
from camfix.metrics import PeakIoU

from command_line import run_main
from data import ground_truth_paths, read_image_list, read_mask
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

logger = logging.getLogger("camfix.imagenet.evaluate_lid")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--images", type=Path, required=True, help="folder the --list paths are relative to")
    data.add_argument("--list", type=Path, required=True, help="one image per line: 'path [class]'")
    data.add_argument("--masks", type=Path, required=True, help="ground truth: MASKS/<path with .png>, non-zero = object")
    data.add_argument("--gt-known", action="store_true", help="map the class given in the list, not the top-1 prediction")
    data.add_argument("--no-maps", action="store_true", help="do not write the submission PNGs")
    data.add_argument("--reduction", choices=("dataset", "image"), default="dataset",
                      help="dataset: intersections and unions summed over all images per threshold (default); "
                           "image: mean of per-image IoUs")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_evaluation_arguments(parser, args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    entries = read_image_list(args.list, args.images, min_labels=1 if args.gt_known else 0, arguments=("--list", "--images"))
    images = [path for path, _ in entries]
    masks = ground_truth_paths(images, args.images, args.masks, "--masks")
    labels = torch.tensor([labels[0] for _, labels in entries]) if args.gt_known else None
    model, fields = load_evaluation_model(args)
    if labels is not None and int(labels.max()) >= fields["num_classes"]:
        raise InputError(f"{args.list} has class {int(labels.max())}, but the model has {fields['num_classes']} classes")
    with distributed(args.device) as context:
        setup_logging(context, args.out / "evaluate_lid.log")
        evaluate(model, fields, images, masks, labels, args, context)


def evaluate(
    model: torch.nn.Module,
    fields: Dict[str, Any],
    images: List[Path],
    masks: List[Path],
    labels: Optional[torch.Tensor],
    args: argparse.Namespace,
    context: DistributedContext,
) -> None:
    """Accumulate this rank's share, sum the counts over ranks, and (rank 0) write the results."""
    metric = PeakIoU(reduction=args.reduction)
    for indices, maps, _, _, sizes in evaluation_batches(model, images, labels, args, context, "LID Track 3"):
        for index, saliency, (height, width) in zip(indices, maps, sizes):
            mask = read_mask(masks[index])
            if mask.shape != (height, width):
                logger.warning("mask %s is %dx%d but its image %dx%d: the map is resized to the mask for the metric",
                               masks[index], *mask.shape, height, width)
            quantized = quantize(to_image_size(saliency, *mask.shape))
            # float64: q / 255 equals the metric's threshold k / 255 exactly at q == k (float32 would round across it).
            metric.update(quantized[None].double() / 255, torch.from_numpy(mask)[None])
            if not args.no_maps:
                picture = quantized if mask.shape == (height, width) else quantize(to_image_size(saliency, height, width))
                write_png(args.out / "maps" / images[index].relative_to(args.images).with_suffix(".png"), picture)
    result = metric.sync().compute()
    if context.is_main:
        record = {
            **result.as_dict(), "iou_curve": result.curve.tolist(), "gt_known": args.gt_known, "nwc": not args.no_nwc,
            "pct": args.pct, "crf": args.crf, "size": args.size, "checkpoint": str(args.checkpoint), **fields,
        }
        write_json(args.out / "metrics.json", record)
        plot_iou_curve(result.thresholds * 255, result.curve, args.out / "iou_curve.png")
        logger.info("Peak IoU %.2f%% at threshold %d/255 over %d images; wrote %s", result.peak,
                    round(result.peak_threshold * 255), result.num_images, args.out / "metrics.json")


def quantize(saliency: torch.Tensor) -> torch.Tensor:
    """A map in ``[0, 1]`` as the submission's 8-bit levels: ``round(255 * map)``, uint8."""
    return saliency.mul(255).round().to(torch.uint8)


def plot_iou_curve(levels: np.ndarray, curve: np.ndarray, path: Path) -> None:
    """The IoU curve (percent) over the thresholds 0..255 with its peak marked, as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return
    best = int(np.argmax(curve))
    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=120)
    axes.plot(levels, curve, color="tab:blue")
    axes.plot(levels[best], curve[best], "o", color="tab:red", label=f"peak {curve[best]:.2f}% at {levels[best]:.0f}")
    axes.set(xlabel="threshold (map > t, 8-bit levels)", ylabel="IoU (%)", xlim=(0, 255), title="IoU curve")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower center")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    run_main(main)
