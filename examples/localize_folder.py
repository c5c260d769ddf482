#!/usr/bin/env python3
"""Localize the objects in a folder of images with a trained classifier and write overlays and boxes.

    python examples/localize_folder.py --images photos/ --checkpoint seresnet50_tap.pth --arch seresnet50 \
        --num-classes 1000 --tap 0.05 --out localized/

For each image: the class activation map of the top-1 class (or ``--label``) with negative weight clamping,
the percentile threshold (PaS) and the box of the largest region, drawn over the map, plus ``boxes.json`` with
the class, score and box ``(x0, y0, x1, y1)`` (inclusive pixel indices, in the original image's coordinates:
scaled from the model input by ``camfix.boxes.resize_boxes``, the reference evaluator's rule; ``NO_BOX``
``(-1, -1, -1, -1)`` when the map has no region above the threshold).
The checkpoint is a ``state_dict`` of a camfix / timm ResNet (``torch.save(model.state_dict(), path)``; a dict
with a ``state_dict`` or ``model`` entry and DDP ``module.`` prefixes are accepted).

Every option, the checkpoint and the output folder are checked before the first image is read; bad input ends
with one ``localize_folder.py: error: ...`` line and exit status 2 (``--debug`` adds the traceback). Each output
file is written atomically, so an interrupted run leaves complete overlays and no half-written file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import camfix
from camfix import models
from camfix.boxes import resize_boxes
from camfix.cli_support import (
    InputError,
    add_debug_option,
    atomic_write,
    check_int,
    check_number,
    check_output_path,
    run_command,
)
from camfix.crf import load_pydensecrf
from camfix.viz import GROUND_TRUTH_COLOR, draw_boxes, overlay, save_image

logger = logging.getLogger("localize_folder")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
ARCHITECTURES = {"resnet50": models.resnet50, "seresnet50": models.seresnet50, "seresnet_small": models.seresnet_small}


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path} (unreadable, corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_rgb(rgb: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> uint8 ``(3, size, size)``."""
    return torch.from_numpy(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("camfix-out"), help="output folder")
    parser.add_argument("--checkpoint", type=Path, help="model state_dict; without it the weights are random")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="seresnet50")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--tap", type=float, default=None, metavar="THETA", help="the model was trained with TAP")
    parser.add_argument("--size", type=int, default=224, help="side of the square model input")
    parser.add_argument("--label", type=int, default=None, help="localize this class instead of the top-1")
    parser.add_argument("--theta-loc", type=float, default=0.35, help="localization threshold in [0, 1]")
    parser.add_argument("--pct", type=float, default=98.0, help="percentile for PaS; 100 = max-based CAM")
    parser.add_argument("--no-nwc", action="store_true", help="keep negative classifier weights (original CAM)")
    parser.add_argument("--crf", action="store_true", help="refine maps with a dense CRF (camfix[crf])")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_debug_option(parser)
    return parser.parse_args(argv)


def check_options(args: argparse.Namespace) -> torch.device:
    """Every option's range, the CRF's optional dependency and the device; returns the device."""
    check_int("--num-classes", args.num_classes, 1)
    if args.tap is not None:
        check_number("--tap", args.tap, 0.0, 1.0, high_inclusive=False)
    check_int("--size", args.size, 8)
    if args.label is not None:
        check_int("--label", args.label, 0, args.num_classes - 1)
    check_number("--theta-loc", args.theta_loc, 0.0, 1.0)
    check_number("--pct", args.pct, 0.0, 100.0, low_inclusive=False)
    check_int("--batch-size", args.batch_size, 1)
    if args.crf:
        try:
            load_pydensecrf()
        except ImportError as error:
            raise InputError(f"--crf: {error}") from None
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise InputError(f"--device must be a torch device such as cpu, cuda or cuda:1, got {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: CUDA is not available (torch.cuda.is_available() is False)")
    return device


def find_images(images: Path, out: Path) -> List[Path]:
    """The images under ``images``, sorted, leaving out ``out`` (a previous run's overlays); each must get its own
    overlay file."""
    if not images.is_dir():
        raise InputError(f"--images must be an existing folder, got {str(images)!r}")
    out_resolved = out.resolve()
    paths = sorted(
        p for p in images.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and out_resolved not in p.resolve().parents
    )
    if not paths:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images}")
    overlays: Dict[Path, Path] = {}
    for path in paths:
        overlay_path = path.relative_to(images).with_suffix(".png")
        if overlay_path in overlays:
            raise InputError(f"{overlays[overlay_path]} and {path} would both write the overlay {out / overlay_path}")
        overlays[overlay_path] = path
    return paths


def build_model(args: argparse.Namespace) -> nn.Module:
    model = ARCHITECTURES[args.arch](num_classes=args.num_classes)
    if args.tap is not None:
        model.global_pool = camfix.TAPool(args.tap, flatten=True)
    if args.checkpoint is None:
        logger.warning("no --checkpoint: the model has random weights, so the maps mean nothing")
        return model
    try:
        state = models.read_state_dict(args.checkpoint)
        models.check_state_dict(model, state)
    except (TypeError, ValueError, OSError) as error:
        raise InputError(
            f"--checkpoint {args.checkpoint} (--arch {args.arch}, --num-classes {args.num_classes}): {error}"
        ) from None
    model.load_state_dict(state, strict=True)
    return model


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    device = check_options(args)
    check_output_path("--out", args.out, folder=True)
    paths = find_images(args.images, args.out)
    model = build_model(args).to(device).eval()

    records: List[dict] = []
    for start in tqdm(range(0, len(paths), args.batch_size), desc="localizing", unit="batch"):
        batch_paths = paths[start : start + args.batch_size]
        originals = [read_rgb(p) for p in batch_paths]
        rgb_batch = torch.stack([resize_rgb(rgb, args.size) for rgb in originals]).to(device)
        labels = None if args.label is None else [args.label] * len(batch_paths)
        result = camfix.localize(
            model, camfix.normalize_images(rgb_batch), labels, clamp_negative=not args.no_nwc,
            theta_loc=args.theta_loc, pct=args.pct, crf=args.crf, crf_images=rgb_batch if args.crf else None,
        )
        scores = result.logits.float().softmax(dim=1).gather(1, result.classes[:, None])[:, 0]
        for path, rgb, saliency, box, cls, score in zip(
            batch_paths, originals, result.maps.cpu(), result.boxes.cpu(), result.classes.cpu(), scores.cpu()
        ):
            height, width = rgb.shape[:2]
            full = camfix.resize_maps(saliency[None], (height, width), mode="bilinear")[0]
            scaled = resize_boxes(box[None].numpy(), (args.size, args.size), (width, height))[0].tolist()
            picture = draw_boxes(overlay(rgb, full), scaled, GROUND_TRUTH_COLOR)
            relative = path.relative_to(args.images)
            save_image(args.out / relative.with_suffix(".png"), picture)
            records.append({"image": str(relative), "class": int(cls), "score": float(score), "box": scaled})
    with atomic_write(args.out / "boxes.json") as stream:
        stream.write(json.dumps(records, indent=1).encode("utf-8"))
    logger.info("wrote %d overlays and boxes.json to %s", len(records), args.out)


if __name__ == "__main__":
    sys.exit(run_command(Path(sys.argv[0]).name, main, sys.argv[1:]))
