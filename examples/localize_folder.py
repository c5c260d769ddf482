#!/usr/bin/env python3
"""Localize the objects in a folder of images with a trained classifier and write overlays and boxes.

    python examples/localize_folder.py --images photos/ --checkpoint seresnet50_tap.pth --arch seresnet50 \
        --num-classes 1000 --tap 0.05 --out localized/

For each image: the class activation map of the top-1 class (or ``--label``) with negative weight clamping,
the percentile threshold (PaS) and the box of the largest region, drawn over the map, plus ``boxes.json`` with
the class, score and box ``(x0, y0, x1, y1)`` (inclusive pixel indices, in the original image's coordinates).
The checkpoint is a ``state_dict`` of a camfix / timm ResNet (``torch.save(model.state_dict(), path)``; a dict
with a ``state_dict`` or ``model`` entry and DDP ``module.`` prefixes are accepted).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import List

import cv2
import numpy as np
import torch
from tqdm import tqdm

import camfix
from camfix import models
from camfix.viz import GROUND_TRUTH_COLOR, draw_boxes, overlay, save_image

logger = logging.getLogger("localize_folder")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
ARCHITECTURES = {"resnet50": models.resnet50, "seresnet50": models.seresnet50, "seresnet_small": models.seresnet_small}


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_model_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    tensor = torch.from_numpy(resized).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(camfix.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(camfix.IMAGENET_STD)[:, None, None]
    return (tensor - mean) / std


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("camfix-out"), help="output folder")
    parser.add_argument("--checkpoint", type=Path, help="model state_dict; without it the weights are random")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="seresnet50")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--tap", type=float, default=None, metavar="THETA", help="the model was trained with TAP")
    parser.add_argument("--size", type=int, default=224, help="side of the square model input")
    parser.add_argument("--label", type=int, default=None, help="localize this class instead of the top-1")
    parser.add_argument("--theta-loc", type=float, default=0.35)
    parser.add_argument("--pct", type=float, default=98.0, help="percentile for PaS; 100 = max-based CAM")
    parser.add_argument("--no-nwc", action="store_true", help="keep negative classifier weights (original CAM)")
    parser.add_argument("--crf", action="store_true", help="refine maps with a dense CRF (camfix[crf])")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.images}")
    model = ARCHITECTURES[args.arch](num_classes=args.num_classes)
    if args.tap is not None:
        model.global_pool = camfix.TAPool(args.tap, flatten=True)
    if args.checkpoint:
        model.load_state_dict(models.read_state_dict(args.checkpoint), strict=True)
    else:
        logger.warning("no --checkpoint: the model has random weights, so the maps mean nothing")
    model.to(args.device).eval()

    records: List[dict] = []
    for start in tqdm(range(0, len(paths), args.batch_size), desc="localizing", unit="batch"):
        batch_paths = paths[start : start + args.batch_size]
        originals = [read_rgb(p) for p in batch_paths]
        images = torch.stack([to_model_input(rgb, args.size) for rgb in originals]).to(args.device)
        labels = None if args.label is None else [args.label] * len(batch_paths)
        result = camfix.localize(
            model, images, labels, clamp_negative=not args.no_nwc, theta_loc=args.theta_loc, pct=args.pct,
            crf=args.crf,
        )
        scores = result.logits.float().softmax(dim=1).gather(1, result.classes[:, None])[:, 0]
        for path, rgb, saliency, box, cls, score in zip(
            batch_paths, originals, result.maps.cpu(), result.boxes.cpu(), result.classes.cpu(), scores.cpu()
        ):
            height, width = rgb.shape[:2]
            full = camfix.resize_maps(saliency[None], (height, width), mode="bilinear")[0]
            scaled = _scale_box(box.tolist(), width / args.size, height / args.size)
            picture = draw_boxes(overlay(rgb, full), [scaled], GROUND_TRUTH_COLOR)
            relative = path.relative_to(args.images)
            save_image(args.out / relative.with_suffix(".png"), picture)
            records.append({"image": str(relative), "class": int(cls), "score": float(score), "box": scaled})
    (args.out / "boxes.json").write_text(json.dumps(records, indent=1))
    logger.info("wrote %d overlays and boxes.json to %s", len(records), args.out)


def _scale_box(box: List[int], scale_x: float, scale_y: float) -> List[int]:
    """Map an inclusive pixel box from the model input to the original image; keeps the no-box sentinel."""
    if box[0] < 0:
        return box
    x0, y0, x1, y1 = box
    return [int(x0 * scale_x), int(y0 * scale_y), int((x1 + 1) * scale_x) - 1, int((y1 + 1) * scale_y) - 1]


if __name__ == "__main__":
    main()
