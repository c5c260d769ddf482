#!/usr/bin/env python3
"""Train ResNet50-SE with TAP on ImageNet (LID 2020 Track 3 recipe), on one GPU or many with torchrun.

One process (a GPU, or the CPU):

    python examples/imagenet/train.py --train-dir /data/imagenet/train --out runs/seresnet50_tap

8 GPUs on each of N nodes (run on every node; the rendezvous endpoint is the first node):

    torchrun --nnodes N --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29400 --rdzv_id JOB \\
        examples/imagenet/train.py --train-dir /data/imagenet/train --out runs/seresnet50_tap

The recipe (paper: "resized to 384x384 and randomly cropped to 336x336 followed by horizontal flip", TAP with
theta_tap = 0.05): ImageFolder data, SGD with momentum, learning rate ``--base-lr`` per 256 images scaled to the
global batch, linear warm-up then step or cosine decay (per iteration), cross-entropy. On CUDA: bf16 autocast
(``--amp``) and channels_last. A checkpoint ``last.pth`` is written atomically after every epoch; ``--resume
auto`` continues from it exactly (model, optimizer, scheduler, grad scaler, epoch and every rank's RNG state;
augmentation is a function of (seed, epoch, index)). The paper gives no optimisation schedule; the defaults are
torchvision's ImageNet reference recipe (90 epochs, 0.1 per 256 images, x0.1 at epochs 30 and 60).

Track 1 (WSSS) variant: ``--train-list`` (lines ``path label [label ...]``) with ``--image-root`` trains on one
class per image, chosen by ``--single-class`` (see README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from camfix.cli_support import InputError, add_debug_option, check_int, check_number
from camfix.models import load_torchvision_resnet

from checkpoints import (
    ARCHITECTURES,
    POOLINGS,
    build_model,
    check_state_dict_fits,
    load_checkpoint,
    model_fields,
    model_state_dict,
    save_atomic,
)
from command_line import check_output_folder, run_main
from data import RESIZE_MODES, EpochSampler, TrainImages, image_folder_samples, normalize_batch, read_image_list
from distributed import DistributedContext, amp_dtype, distributed, setup_logging

logger = logging.getLogger("camfix.imagenet.train")

SINGLE_CLASS_RULES = ("rarest", "most-frequent")
CLASSIFIER_KEYS = ("fc.weight", "fc.bias")
#: Arguments that must not change when a run is resumed, or the continuation is not the same run.
RUN_FIELDS = (
    "epochs", "batch_size", "base_lr", "momentum", "weight_decay", "schedule",
    "milestones", "warmup_epochs", "label_smoothing", "resize", "crop", "resize_mode", "seed", "amp",
    "max_steps_per_epoch", "single_class",
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--train-dir", type=Path, help="ImageFolder root: TRAIN_DIR/<class>/<image> (ImageNet's train/)")
    source.add_argument("--train-list", type=Path, help="Track 1: list of 'path label [label ...]' lines, paths relative to --image-root")
    data.add_argument("--image-root", type=Path, help="folder the --train-list paths are relative to")
    data.add_argument("--num-classes", type=int, default=None, help="with --train-list: number of classes (default: largest label + 1)")
    data.add_argument("--single-class", choices=SINGLE_CLASS_RULES, default="rarest",
                      help="with --train-list: which of an image's labels to train on (default: the label with the fewest images)")
    data.add_argument("--resize", type=int, default=384, help="resize side before cropping (paper: 384)")
    data.add_argument("--resize-mode", choices=RESIZE_MODES, default="square", help="square: SxS (paper); shorter: shorter side S")
    data.add_argument("--crop", type=int, default=336, help="random crop side (paper: 336)")
    data.add_argument("--workers", type=int, default=8, help="DataLoader worker processes per rank")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=sorted(ARCHITECTURES), default="seresnet50", help="seresnet50 = the paper's ResNet50-SE")
    model.add_argument("--pool", choices=POOLINGS, default="tap", help="global pooling: tap (paper) or gap")
    model.add_argument("--theta-tap", type=float, default=0.05, help="TAP threshold theta_tap in [0, 1) (paper: 0.05)")
    model.add_argument("--pretrained", type=Path, help="initial weights: a timm or torchvision checkpoint (state_dict)")
    model.add_argument("--pretrained-format", choices=("timm", "torchvision"), default="timm",
                       help="timm: every key must match (fc excepted when the class count differs); "
                            "torchvision: ResNet-50 trunk, the SE weights are reported missing and train from scratch")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=90)
    optim.add_argument("--batch-size", type=int, default=64, help="images per rank per step")
    optim.add_argument("--base-lr", type=float, default=0.1, help="SGD learning rate per 256 images (scaled by global batch / 256)")
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--weight-decay", type=float, default=1e-4)
    optim.add_argument("--schedule", choices=("step", "cosine"), default="step")
    optim.add_argument("--milestones", type=int, nargs="*", default=[30, 60], help="step schedule: epochs where the lr drops x0.1")
    optim.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up length in epochs")
    optim.add_argument("--label-smoothing", type=float, default=0.0)
    optim.add_argument("--max-steps-per-epoch", type=int, default=None, help="cut every epoch short (smoke tests)")

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder: last.pth, train.log")
    run.add_argument("--resume", default=None, help="a checkpoint to continue from, or 'auto' for OUT/last.pth if it exists")
    run.add_argument("--save-every", type=int, default=0, help="also keep OUT/epoch_NNNN.pth every this many epochs (0: never)")
    run.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    run.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                     help="mixed precision on CUDA (auto: bf16 on CUDA, off on the CPU)")
    run.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format on CUDA")
    run.add_argument("--seed", type=int, default=0)
    add_debug_option(run)
    args = parser.parse_args(argv)

    try:
        check_int("--resize", args.resize, 1)
        check_int("--crop", args.crop, 1, args.resize)
        check_int("--workers", args.workers, 0)
        check_int("--epochs", args.epochs, 1)
        check_int("--batch-size", args.batch_size, 1)
        check_int("--save-every", args.save_every, 0)
        if args.max_steps_per_epoch is not None:
            check_int("--max-steps-per-epoch", args.max_steps_per_epoch, 1)
        check_number("--theta-tap", args.theta_tap, 0.0, 1.0, high_inclusive=False)
        check_number("--base-lr", args.base_lr, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
        check_number("--momentum", args.momentum, 0.0, 1.0, high_inclusive=False)
        check_number("--weight-decay", args.weight_decay, 0.0, math.inf, high_inclusive=False)
        check_number("--warmup-epochs", args.warmup_epochs, 0.0, args.epochs)
        check_number("--label-smoothing", args.label_smoothing, 0.0, 1.0, high_inclusive=False)
        for milestone in args.milestones:
            check_int("--milestones", milestone, 1)
        if args.num_classes is not None:
            check_int("--num-classes", args.num_classes, 1)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.train_list is not None and args.image_root is None:
        parser.error("--train-list needs --image-root (the folder its paths are relative to)")
    if args.train_dir is not None and (args.image_root is not None or args.num_classes is not None):
        parser.error("--image-root and --num-classes go with --train-list; with --train-dir the classes are its sub-folders")
    check_output_folder(parser, args.out)
    args.milestones = sorted(args.milestones)
    return args


# ------------------------------------------------------------------------------------------------------ data


def select_single_class(label_sets: Sequence[Sequence[int]], rule: str) -> List[int]:
    """One label per image for the Track 1 variant: among an image's labels, the one that occurs in the fewest
    (``"rarest"``) or the most (``"most-frequent"``) images of the whole list; ties go to the smaller index.

    The paper trains "on a single ground truth class chosen based on the number of images that a class belongs
    to" without saying which way; ``"rarest"`` keeps rare classes from being swamped by frequent co-occurring
    ones (a person with a rare instrument trains the instrument).
    """
    if rule not in SINGLE_CLASS_RULES:
        raise ValueError(f"rule must be one of {SINGLE_CLASS_RULES}, got {rule!r}")
    images_per_class = Counter(label for labels in label_sets for label in set(labels))
    sign = 1 if rule == "rarest" else -1
    return [min(sorted(set(labels)), key=lambda label: sign * images_per_class[label]) for labels in label_sets]


def training_samples(args: argparse.Namespace) -> Tuple[List[Tuple[Path, int]], List[str]]:
    """``(path, label)`` pairs and class names from ``--train-dir`` (ImageFolder) or ``--train-list`` (Track 1)."""
    if args.train_dir is not None:
        return image_folder_samples(args.train_dir, "--train-dir")
    entries = read_image_list(args.train_list, args.image_root, min_labels=1, arguments=("--train-list", "--image-root"))
    labels = select_single_class([entry_labels for _, entry_labels in entries], args.single_class)
    largest = max(max(entry_labels) for _, entry_labels in entries)
    num_classes = largest + 1 if args.num_classes is None else args.num_classes
    if largest >= num_classes:
        raise InputError(f"{args.train_list} has label {largest}, but --num-classes is {num_classes}")
    return [(path, label) for (path, _), label in zip(entries, labels)], [str(index) for index in range(num_classes)]


# ---------------------------------------------------------------------------------------------- optimisation


@dataclass
class LearningRateSchedule:
    """Multiplier of the peak learning rate at optimiser step ``step`` (counted from 0), for ``LambdaLR``.

    Linear warm-up over ``warmup_steps`` (from ``1 / warmup_steps`` to 1), then either x0.1 at every milestone
    (``step``, milestones in steps) or a cosine decay to 0 at ``total_steps`` (``cosine``).
    """

    schedule: str
    total_steps: int
    warmup_steps: int
    milestones: List[int]

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "step":
            return 0.1 ** sum(step >= milestone for milestone in self.milestones)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def load_pretrained(model: nn.Module, path: Path, fmt: str, arch: str) -> List[str]:
    """Initialise ``model`` from a timm (``fmt="timm"``) or torchvision ResNet checkpoint; return the keys left at
    their initialisation (``fc.*`` when the class count differs; the SE keys for a torchvision trunk)."""
    state = model_state_dict(load_checkpoint(path, "--pretrained"))
    expected = model.state_dict()
    head_fits = all(key in state and state[key].shape == expected[key].shape for key in CLASSIFIER_KEYS)
    if fmt == "torchvision":
        try:
            return load_torchvision_resnet(model, state, load_classifier=head_fits).missing_keys
        except (TypeError, ValueError) as error:
            raise InputError(f"--pretrained {path}: {error}") from None
    ignore = () if head_fits else CLASSIFIER_KEYS
    try:
        check_state_dict_fits(model, state, f"--arch {arch} (--pretrained {path})", ignore=ignore)
    except InputError as error:
        has_se = any(".se." in key for key in expected)
        if has_se and not any(".se." in key for key in state):
            raise InputError(f"{error}. It has no SE weights: if it is a torchvision ResNet, pass --pretrained-format torchvision") from None
        raise
    model.load_state_dict({key: value for key, value in state.items() if key not in ignore}, strict=not ignore)
    return list(ignore)


# ------------------------------------------------------------------------------------------------ checkpoints


def rng_state(device: torch.device) -> Dict[str, Any]:
    """This process's RNG states in types that ``torch.load(weights_only=True)`` reads back."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "python": random.getstate(),
    }


def restore_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def run_fields(args: argparse.Namespace) -> Dict[str, Any]:
    return {name: getattr(args, name) for name in RUN_FIELDS}


def check_resumable(
    checkpoint: Mapping[str, Any], args: argparse.Namespace, fields: Mapping[str, Any], world_size: int, path: Path
) -> None:
    """Refuse a checkpoint of another model, another run configuration or another number of processes (the
    schedule counts steps of the global batch, and every rank restores its own RNG state), naming every difference."""
    if "optimizer" not in checkpoint or "epoch" not in checkpoint:
        raise InputError(f"--resume {path} is not a training checkpoint of train.py (no optimizer state); use --pretrained to start from weights")
    recorded = {**checkpoint.get("run", {}), **{key: checkpoint.get(key) for key in fields}, "processes": checkpoint.get("world_size")}
    wanted = {**run_fields(args), **fields, "processes": world_size}
    differences = [f"{key}: checkpoint {recorded.get(key)!r}, command line {value!r}" for key, value in wanted.items() if recorded.get(key) != value]
    if differences:
        raise InputError(
            f"--resume {path} was written by a different run; " + "; ".join(differences)
            + " (to continue from its weights in a new run, pass it as --pretrained)"
        )


@dataclass(frozen=True)
class EpochStats:
    """One epoch over every rank: mean loss, top-1 training accuracy in [0, 1], and throughput in images per
    second of all ranks together, timed from the end of the first step (which includes warm-up) to the end."""

    loss: float
    accuracy: float
    images_per_second: float


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    steps: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    context: DistributedContext,
    dtype: Optional[torch.dtype],
    channels_last: bool,
    label_smoothing: float,
    description: str,
) -> EpochStats:
    """One epoch of ``steps`` optimiser steps on this rank's share of the data."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=context.device)  # loss sum, correct, images
    progress = tqdm(total=steps, desc=description, unit="step", disable=not context.is_main, dynamic_ncols=True, file=sys.stderr)
    started = time.perf_counter()
    timed_images = 0
    for step, (images, labels) in enumerate(loader):
        if step == steps:
            break
        images = normalize_batch(images.to(context.device, non_blocking=True), channels_last)
        labels = labels.to(context.device, non_blocking=True)
        with torch.autocast(context.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        with torch.no_grad():
            totals[0] += loss.detach() * labels.numel()
            totals[1] += (logits.argmax(1) == labels).sum()
            totals[2] += labels.numel()
        if step == 0:
            if context.device.type == "cuda":
                torch.cuda.synchronize(context.device)
            started = time.perf_counter()
        else:
            timed_images += labels.numel()
        progress.update(1)
        if context.is_main and (step % 20 == 0 or step == steps - 1):
            progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.4g}")
    progress.close()
    if context.distributed:
        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()  # waits for the device, so the time below is complete
    elapsed = time.perf_counter() - started
    if not math.isfinite(loss_sum):
        raise FloatingPointError(f"{description}: the loss is not finite ({loss_sum}); lower --base-lr or use --amp bf16 instead of fp16")
    throughput = context.world_size * timed_images / elapsed if timed_images else math.nan
    return EpochStats(loss_sum / count, correct / count, throughput)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    # Every input is checked before joining the process group, so that bad input fails on every rank at once.
    samples, classes = training_samples(args)
    fields = model_fields(args.arch, len(classes), args.pool, args.theta_tap)
    resume_path: Optional[Path] = None
    if args.resume == "auto":
        resume_path = args.out / "last.pth" if (args.out / "last.pth").is_file() else None
    elif args.resume is not None:
        resume_path = Path(args.resume)
    checkpoint = load_checkpoint(resume_path, "--resume") if resume_path is not None else None
    if checkpoint is not None:
        check_resumable(checkpoint, args, fields, int(os.environ.get("WORLD_SIZE", "1")), resume_path)
    torch.manual_seed(args.seed)
    model = build_model(args.arch, len(classes), args.pool, args.theta_tap)
    initialised: Optional[List[str]] = None  # keys a --pretrained checkpoint did not fill
    if checkpoint is None and args.pretrained is not None:
        initialised = load_pretrained(model, args.pretrained, args.pretrained_format, args.arch)

    with distributed(args.device) as context:
        setup_logging(context, args.out / "train.log")
        if initialised is not None:
            logger.info("initialised from %s (%s); %d key(s) keep their initialisation%s", args.pretrained,
                        args.pretrained_format, len(initialised), f": {', '.join(initialised[:8])}" if initialised else "")
        elif args.pretrained is not None:
            logger.info("resuming from %s: --pretrained %s is not used", resume_path, args.pretrained)
        _train(args, context, model, fields, samples, classes, checkpoint, resume_path)


def _train(
    args: argparse.Namespace,
    context: DistributedContext,
    model: nn.Module,
    fields: Dict[str, Any],
    samples: List[Tuple[Path, int]],
    classes: List[str],
    checkpoint: Optional[Mapping[str, Any]],
    resume_path: Optional[Path],
) -> None:
    logger.info("%d training images, %d classes, %d process(es) on %s", len(samples), len(classes), context.world_size, context.device)
    channels_last = context.device.type == "cuda" and not args.no_channels_last
    model.to(context.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    dtype = amp_dtype(args.amp, context.device)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    dataset = TrainImages(samples, args.resize, args.crop, args.resize_mode, args.seed)
    sampler = EpochSampler(len(dataset), context.rank, context.world_size, args.seed)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers, drop_last=True,
        pin_memory=context.device.type == "cuda", persistent_workers=args.workers > 0,
    )
    steps = len(loader) if args.max_steps_per_epoch is None else min(len(loader), args.max_steps_per_epoch)
    if steps == 0:
        raise InputError(
            f"{len(samples)} training images make no full batch of {args.batch_size} on each of {context.world_size} "
            "rank(s); lower --batch-size"
        )

    global_batch = args.batch_size * context.world_size
    peak_lr = args.base_lr * global_batch / 256
    optimizer = torch.optim.SGD(model.parameters(), lr=peak_lr, momentum=args.momentum, weight_decay=args.weight_decay)
    schedule = LearningRateSchedule(
        args.schedule, args.epochs * steps, round(args.warmup_epochs * steps), [m * steps for m in args.milestones]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(context.device.type, enabled=dtype == torch.float16)

    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(model_state_dict(checkpoint), strict=True)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch = int(checkpoint["epoch"])
        restore_rng_state(checkpoint["rng"][context.rank], context.device)
        logger.info("resumed from %s after epoch %d", resume_path, start_epoch)

    network: nn.Module = model
    if context.distributed:
        network = DistributedDataParallel(model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
    logger.info(
        "%s (%s pooling), %d steps/epoch, global batch %d, peak lr %.4g, %s, %s", args.arch, args.pool, steps,
        global_batch, peak_lr, f"autocast {dtype}" if dtype else "float32", "channels_last" if channels_last else "NCHW",
    )

    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        stats = train_epoch(
            network, loader, steps, optimizer, scheduler, scaler, context, dtype, channels_last, args.label_smoothing,
            f"epoch {epoch + 1}/{args.epochs}",
        )
        logger.info(
            "epoch %d/%d: loss %.4f, train top-1 %.4f, lr %.4g, %.1f images/s", epoch + 1, args.epochs, stats.loss,
            stats.accuracy, scheduler.get_last_lr()[0], stats.images_per_second,
        )
        rng_states = context.all_gather_object(rng_state(context.device))
        if context.is_main:
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch + 1, "rng": rng_states, "run": run_fields(args),
                "world_size": context.world_size, "classes": classes, **fields,
            }
            save_atomic(state, args.out / "last.pth")
            if args.save_every and (epoch + 1) % args.save_every == 0:
                save_atomic(state, args.out / f"epoch_{epoch + 1:04d}.pth")
            logger.info("saved %s", args.out / "last.pth")
        context.barrier()


if __name__ == "__main__":
    run_main(main)
