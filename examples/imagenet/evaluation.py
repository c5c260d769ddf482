"""What the recipe's evaluation scripts share: their options, the trained model, the paper's saliency maps batch
by batch over this rank's share of the images, and the output files.

``evaluate_wsol.py``, ``evaluate_lid.py`` and ``evaluate_wsss.py`` each add their own data and metric to this:
:func:`evaluation_batches` yields the maps of :func:`paper_maps` (camfix's stages: CAM with NWC, min-max, PaS,
optional dense CRF) for each batch, and every file is written atomically (:func:`write_json`, :func:`write_png`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import cv2
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

import camfix
from camfix.cli_support import add_debug_option, atomic_write, check_int, check_number
from camfix.crf import DenseCRFParams, load_pydensecrf
from camfix.thresholds import DEFAULT_PCT

from checkpoints import (
    ARCHITECTURES,
    MODEL_DEFAULTS,
    POOLINGS,
    build_model,
    load_checkpoint,
    load_model_weights,
    resolve_model_fields,
)
from command_line import check_output_folder
from data import EvalImages, normalize_batch
from distributed import DistributedContext, amp_dtype, cpus_per_rank, shard_indices

__all__ = [
    "add_evaluation_arguments",
    "check_evaluation_arguments",
    "evaluation_batches",
    "load_evaluation_model",
    "paper_maps",
    "to_image_size",
    "write_json",
    "write_png",
]


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every evaluation script shares: the model, how maps are made, how the run is spread."""
    model = parser.add_argument_group("model (defaults: what the checkpoint records, else the paper's)")
    model.add_argument("--checkpoint", type=Path, required=True, help="train.py's last.pth, or a state_dict (timm layout)")
    model.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None, help=f"default {MODEL_DEFAULTS['arch']}")
    model.add_argument("--num-classes", type=int, default=None, help=f"default {MODEL_DEFAULTS['num_classes']}")
    model.add_argument("--pool", choices=POOLINGS, default=None, help="pooling the model was trained with (default tap)")
    model.add_argument("--theta-tap", type=float, default=None, help="TAP threshold (default 0.05)")
    maps = parser.add_argument_group("maps")
    maps.add_argument("--size", type=int, default=384,
                      help="images are resized to SIZE x SIZE as a whole (default 384: the training resize, so objects "
                           "have the scale they were trained at)")
    maps.add_argument("--no-nwc", action="store_true", help="keep negative classifier weights (original CAM)")
    maps.add_argument("--pct", type=float, default=DEFAULT_PCT,
                      help="PaS percentile: maps are divided by their PCT-th percentile and clipped to 1 (paper 98; 100: off)")
    maps.add_argument("--crf", action="store_true", help="refine every map with a dense CRF (camfix[crf])")
    maps.add_argument("--crf-workers", type=int, default=None,
                      help="CRF processes per rank (default: the node's CPUs shared among its torchrun processes)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder: metrics.json and the maps")
    run.add_argument("--batch-size", type=int, default=32, help="images per rank per forward pass")
    run.add_argument("--workers", type=int, default=8, help="DataLoader worker processes per rank")
    run.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    run.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto", help="autocast on CUDA (auto: bf16)")
    add_debug_option(run)


def check_evaluation_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Range checks of :func:`add_evaluation_arguments`' options and a writable ``--out``; a bad value ends with
    ``parser.error``."""
    try:
        check_int("--size", args.size, 8)
        check_int("--batch-size", args.batch_size, 1)
        check_int("--workers", args.workers, 0)
        check_number("--pct", args.pct, 0.0, 100.0, low_inclusive=False)
        if args.num_classes is not None:
            check_int("--num-classes", args.num_classes, 1)
        if args.theta_tap is not None:
            check_number("--theta-tap", args.theta_tap, 0.0, 1.0, high_inclusive=False)
        if args.crf_workers is not None:
            check_int("--crf-workers", args.crf_workers, 1)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    check_output_folder(parser, args.out)
    if args.crf:
        try:
            load_pydensecrf()
        except ImportError as error:
            parser.error(str(error))


def load_evaluation_model(args: argparse.Namespace) -> Tuple[nn.Module, Dict[str, Any]]:
    """The trained classifier on the CPU in eval mode, and its :data:`MODEL_FIELDS`."""
    checkpoint = load_checkpoint(args.checkpoint, "--checkpoint")
    requested = {"arch": args.arch, "num_classes": args.num_classes, "pool": args.pool, "theta_tap": args.theta_tap}
    fields = resolve_model_fields(checkpoint, requested)
    model = build_model(fields["arch"], fields["num_classes"], fields["pool"], fields["theta_tap"] or 0.0)
    load_model_weights(model, checkpoint, fields, args.checkpoint)
    return model.eval(), fields


class _Autocast(nn.Module):
    """Runs a classifier's forward pass under autocast, so that :func:`camfix.class_maps` gets bf16/fp16 speed while
    the class activation maps themselves are computed in float32 from the captured features."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x)


@torch.no_grad()
def paper_maps(
    model: nn.Module,
    images: Tensor,
    labels: Optional[Tensor],
    *,
    clamp_negative: bool,
    pct: float,
    crf_params: Optional[DenseCRFParams],
    crf_workers: Optional[int],
    dtype: Optional[torch.dtype],
    channels_last: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    """The paper's saliency maps for a batch: CAM (NWC) -> min-max (:func:`camfix.class_maps`) -> PaS -> dense
    CRF (:func:`camfix.saliency_maps`, the CRF at its default operating point, 0.5).

    Args:
        model: a ``camfix.models.ResNet`` in eval mode, on the device of ``images``.
        images: uint8 RGB ``(N, 3, S, S)`` in ``[0, 255]`` (the resized images; the CRF compares their colours).
        labels: ``(N,)`` int64 classes to map (GT-known), or None for each image's top-1 predicted class.
        clamp_negative: NWC (paper: on).
        pct: PaS percentile, see :func:`camfix.percentile_normalize` (paper 98; 100: off).
        crf_params: dense CRF parameters (:class:`camfix.crf.DenseCRFParams`), or None for no CRF.
        crf_workers: CRF processes (None: one per CPU).
        dtype: autocast dtype of the forward pass (None: float32).
        channels_last: feed the model channels_last inputs.

    Returns:
        ``(maps, classes, logits)``: float32 ``(N, S, S)`` in ``[0, 1]``, int64 ``(N,)`` (the mapped classes) and
        float32 ``(N, K)``, on the device of ``images``.
    """
    runner = model if dtype is None else _Autocast(model, images.device.type, dtype)
    result = camfix.class_maps(
        runner, normalize_batch(images, channels_last), labels, clamp_negative=clamp_negative,
        feature_layer=getattr(model, model.stage_names[-1]), classifier=model.get_classifier(),
    )
    maps = camfix.saliency_maps(
        result.maps, pct, crf_images=None if crf_params is None else images, crf_params=crf_params,
        crf_workers=None if crf_params is None else crf_workers,
    )
    return maps, result.classes, result.logits.float()


def to_image_size(saliency: Tensor, height: int, width: int) -> Tensor:
    """One map ``(S, S)`` in ``[0, 1]`` resized (bilinear) to the original image's ``(height, width)``, on the CPU."""
    return camfix.resize_maps(saliency[None].float().cpu(), (height, width), mode="bilinear")[0].clamp(0.0, 1.0)


def evaluation_batches(
    model: nn.Module,
    paths: Sequence[Path],
    labels: Optional[Tensor],
    args: argparse.Namespace,
    context: DistributedContext,
    description: str,
) -> Iterator[Tuple[List[int], Tensor, Tensor, Tensor, List[Tuple[int, int]]]]:
    """Saliency maps of this rank's share (:func:`shard_indices`) of ``paths``, batch by batch.

    Yields ``(indices, maps, classes, logits, sizes)``: positions in ``paths``, maps ``(B, S, S)`` float32 in
    ``[0, 1]`` and classes ``(B,)``, logits ``(B, K)`` (on ``context.device``) as :func:`paper_maps` gives them,
    and each image's original ``(height, width)``. ``labels`` ``(len(paths),)`` int64 selects GT-known maps.
    """
    dtype = amp_dtype(args.amp, context.device)
    channels_last = context.device.type == "cuda"
    model.to(context.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    crf_params = DenseCRFParams() if args.crf else None
    crf_workers = args.crf_workers or cpus_per_rank()
    dataset = Subset(EvalImages(paths, args.size), shard_indices(len(paths), context.rank, context.world_size))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, pin_memory=context.device.type == "cuda")
    for images, indices, heights, widths in tqdm(loader, desc=description, unit="batch", disable=not context.is_main, dynamic_ncols=True):
        batch_labels = None if labels is None else labels[indices].to(context.device)
        maps, classes, logits = paper_maps(
            model, images.to(context.device, non_blocking=True), batch_labels, clamp_negative=not args.no_nwc,
            pct=args.pct, crf_params=crf_params, crf_workers=crf_workers, dtype=dtype, channels_last=channels_last,
        )
        yield indices.tolist(), maps, classes, logits, list(zip(heights.tolist(), widths.tolist()))


def write_png(path: Path, levels: Tensor) -> None:
    """Write uint8 ``(H, W)`` as a single-channel 8-bit PNG, atomically (parent folders created)."""
    encoded, data = cv2.imencode(".png", levels.cpu().numpy())
    if not encoded:
        raise OSError(f"OpenCV could not encode {path} as PNG")
    with atomic_write(path) as stream:
        stream.write(data.tobytes())


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` as indented JSON, atomically (temporary file + ``os.replace``)."""
    with atomic_write(path) as stream:
        stream.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))
