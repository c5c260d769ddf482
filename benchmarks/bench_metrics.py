"""Box metrics: camfix vs the unmodified reference evaluator (clovaai/wsolevaluation), measured in the same run.

    CAMFIX_REFERENCE_DIR=/tmp/wsolevaluation python benchmarks/bench_metrics.py [--maps 1000] [--size 224]
        [--intervals 0.01 0.001] [--seed 0] [--workers N] [--repeats 1]
    python benchmarks/bench_metrics.py --full [--intervals 0.01] [--workers N]
    python benchmarks/bench_metrics.py --split [--maps 200] [--intervals 0.01]

Default: ``--maps`` CAM-like score maps (a 7x7 random activation map, cubed, bicubic-upsampled to ``--size`` and
min-max normalised, as a CAM is made) with one or two ground-truth boxes each. For every interval, the baseline is
the reference's ``BoxEvaluator`` (``accumulate`` per map, then ``compute``) imported unmodified from
``$CAMFIX_REFERENCE_DIR`` (see ``benchmarks/_reference.py``; without it only camfix is timed, after a message),
once for MaxBoxAcc (``multi_contour_eval=False``) and once for MaxBoxAccV2 (``True``); camfix is
``BoxAccuracy(multi_contour=False)`` and ``BoxAccuracy()`` in reference mode, with ``--workers`` threads (default:
one per usable CPU, camfix's default). Both sides take turns ``--repeats`` times with the garbage collector off,
as :mod:`timeit` does; printed are the medians of wall and CPU seconds (CPU: all threads of the process), the
ratios reference/camfix and whether the accuracies are identical.

``--split``: where camfix's time goes, one thread, CPU microseconds per map (best of 3): the compiled call alone
for MaxBoxAcc (levels and the foreground sweep) and with MaxBoxAccV2 (plus the background sweep for holes),
``box_iou_curves`` (plus the input checks and OpenCV for the thresholds the sweep flags) and
``BoxAccuracy.update`` (plus the counting), and how many maps had a flagged threshold.

``--full``: an ImageNet-scale run of camfix alone on the real ILSVRC validation metadata (50,000 images, 80k
boxes, from ``../shared/wsol-metadata`` beside the repository or ``--metadata``), with generated maps; prints
time, images per second and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

import _reference
import camfix.metrics as metrics
from camfix.parallel import usable_cpus
from camfix.metrics import _native

DEFAULT_METADATA = Path(__file__).resolve().parents[2] / "shared" / "wsol-metadata" / "ILSVRC" / "test"


def cam_like_maps(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    maps = np.empty((count, size, size))
    for index in range(count):
        small = rng.random((7, 7)).astype(np.float32) ** 3
        score = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)
        score -= score.min()
        maps[index] = score / score.max()
    return maps


def random_boxes(rng: np.random.Generator, count: int, size: int) -> List[np.ndarray]:
    boxes = []
    for _ in range(count):
        corners = np.sort(rng.integers(0, size, (int(rng.integers(1, 3)), 2, 2)), axis=1)  # (M, x|y, 0|1)
        boxes.append(np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], axis=1))
    return boxes


def reference_accuracy(
    evaluation: object, maps: np.ndarray, boxes: List[np.ndarray], thresholds: np.ndarray, multi: bool
) -> List[float]:
    """The reference's ``BoxEvaluator`` over all maps: its max accuracy per IoU threshold (30, 50, 70)."""
    evaluator = _reference.box_evaluator(evaluation, boxes, maps.shape[1], thresholds, multi)
    for index, score_map in enumerate(maps):
        evaluator.accumulate(score_map, str(index))
    return [float(value) for value in _reference.quiet_compute(evaluator)]


def camfix_accuracy(
    maps: Tensor, boxes: List[Tensor], thresholds: np.ndarray, multi: bool, workers: Optional[int] = None
) -> List[float]:
    metric = metrics.BoxAccuracy(thresholds, multi_contour=multi, workers=workers)
    for start in range(0, len(maps), 100):
        metric.update(maps[start : start + 100], boxes[start : start + 100])
    result = metric.compute()
    return [float(value) for value in result.max_by_iou(multi=multi).values()]


def timed(fn: Callable[[], object]) -> Tuple[object, float, float]:
    """``fn()``, its wall and CPU seconds; like :mod:`timeit`, with the garbage collector off while it runs (a
    full collection of torch's objects takes ~70 ms and would land in whichever side happened to trigger it)."""
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        return value, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def take_turns(sides: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, Tuple[object, float, float]]:
    """Run the sides in turn ``repeats`` times (so that a change of the machine's load hits all of them); per
    side its value and its median wall and CPU seconds."""
    walls: Dict[str, List[float]] = {name: [] for name in sides}
    cpus: Dict[str, List[float]] = {name: [] for name in sides}
    values: Dict[str, object] = {}
    for _ in range(repeats):
        for name, side in sides.items():
            values[name], wall, cpu = timed(side)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: (values[name], statistics.median(walls[name]), statistics.median(cpus[name])) for name in sides}


def compare(args: argparse.Namespace) -> None:
    evaluation = _reference.load()
    rng = np.random.default_rng(args.seed)
    maps = cam_like_maps(rng, args.maps, args.size)
    boxes = random_boxes(rng, args.maps, args.size)
    print(f"{args.maps} CAM-like maps of {args.size}x{args.size}, seed {args.seed}; native sweep: "
          f"{'yes' if _native.load() is not None else 'NO (OpenCV fallback)'}; camfix threads: "
          f"{args.workers or usable_cpus()}; {args.repeats} turn(s), medians; load average {os.getloadavg()[0]:.2f}")
    map_tensor, box_tensors = torch.from_numpy(maps), [torch.from_numpy(b) for b in boxes]
    camfix_accuracy(map_tensor[:4], box_tensors[:4], metrics.cam_thresholds(0.1), True)  # warm-up: library load
    header = f"{'interval':>8s}  {'metric':11s}  {'ref wall s':>10s}  {'ref cpu s':>9s}  {'camfix wall s':>13s}  "
    print(header + f"{'camfix cpu s':>12s}  {'ratio (cpu)':>11s}  {'ratio (wall)':>12s}  same")
    for interval in args.intervals:
        thresholds = metrics.cam_thresholds(interval)
        for multi, name in ((False, "MaxBoxAcc"), (True, "MaxBoxAccV2")):
            sides: Dict[str, Callable[[], object]] = {
                "camfix": lambda: camfix_accuracy(map_tensor, box_tensors, thresholds, multi, args.workers)
            }
            if evaluation is not None:
                sides["reference"] = lambda: reference_accuracy(evaluation, maps, boxes, thresholds, multi)
            results = take_turns(sides, args.repeats)
            got, fast_wall, fast_cpu = results["camfix"]
            if evaluation is None:
                print(f"{interval:8g}  {name:11s}  {'-':>10s}  {'-':>9s}  {fast_wall:13.2f}  {fast_cpu:12.2f}  "
                      f"{'-':>11s}  {'-':>12s}  {got}")
                continue
            expected, ref_wall, ref_cpu = results["reference"]
            same = "yes" if got == expected else f"NO: {got} vs {expected}"
            print(f"{interval:8g}  {name:11s}  {ref_wall:10.2f}  {ref_cpu:9.2f}  {fast_wall:13.2f}  "
                  f"{fast_cpu:12.2f}  {ref_cpu / fast_cpu:10.1f}x  {ref_wall / fast_wall:11.1f}x  {same}")
    print(f"load average {os.getloadavg()[0]:.2f}")


def split(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    maps = cam_like_maps(rng, args.maps, args.size)
    boxes = random_boxes(rng, args.maps, args.size)
    tensors = [torch.from_numpy(b) for b in boxes]
    library = _native.load()
    if library is None:
        sys.exit("--split measures the compiled sweep, which is unavailable here")
    for interval in args.intervals:
        thresholds = metrics.cam_thresholds(interval)
        steps = {
            "compiled call, MaxBoxAcc": lambda: _native.box_ious(library, maps, thresholds, boxes, True, True, False),
            "compiled call, both": lambda: _native.box_ious(library, maps, thresholds, boxes, True, True, True),
            "box_iou_curves, both": lambda: metrics.box_iou_curves(
                torch.from_numpy(maps), tensors, thresholds, workers=1
            ),
            "BoxAccuracy.update, both": lambda: metrics.BoxAccuracy(thresholds, workers=1).update(
                torch.from_numpy(maps), tensors
            ),
        }
        flagged = int(_native.box_ious(library, maps, thresholds, boxes, True, True, False)[2].any(axis=1).sum())
        print(f"interval {interval:g}, {args.maps} maps of {args.size}x{args.size}, one thread; "
              f"{flagged} maps with a threshold left to OpenCV; load average {os.getloadavg()[0]:.2f}")
        for name, step in steps.items():
            cpu = min(timed(step)[2] for _ in range(3))
            print(f"  {name:26s} {cpu / args.maps * 1e6:8.1f} us/map (CPU)")


def full(args: argparse.Namespace) -> None:
    metadata = metrics.read_metadata(args.metadata)
    print(f"{args.metadata}: {len(metadata.image_ids)} images, {sum(len(b) for b in metadata.boxes.values())} boxes;"
          f" {args.size}x{args.size} generated maps; native sweep: {'yes' if _native.load() is not None else 'NO'};"
          f" threads: {args.workers or usable_cpus()}")
    rng = np.random.default_rng(args.seed)
    for interval in args.intervals:
        metric = metrics.BoxAccuracy(metrics.cam_thresholds(interval), workers=args.workers)
        wall = cpu = 0.0  # the evaluation only: generating the maps is not timed
        ids = metadata.image_ids
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            maps = torch.from_numpy(cam_like_maps(rng, len(batch), args.size))
            gt = [
                torch.from_numpy(metrics.resize_boxes(metadata.boxes[i], metadata.image_sizes[i], (args.size,) * 2))
                for i in batch
            ]
            _, batch_wall, batch_cpu = timed(lambda: metric.update(maps, gt))
            wall, cpu = wall + batch_wall, cpu + batch_cpu
        result = metric.compute()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"interval {interval:g}: {wall:.1f} s wall, {cpu:.1f} s cpu, {len(ids) / wall:.0f} images/s; "
              f"MaxBoxAcc {result.max_box_acc:.2f}, MaxBoxAccV2 {result.max_box_acc_v2:.2f}; "
              f"state {sum(v.numel() for v in metric._states().values())} numbers; peak RSS {peak:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="ImageNet-scale run on the real ILSVRC metadata")
    parser.add_argument("--split", action="store_true", help="where camfix's time goes (one thread)")
    parser.add_argument("--metadata", type=Path, default=DEFAULT_METADATA)
    parser.add_argument("--workers", type=int, default=None, help="camfix's threads (default: one per usable CPU)")
    parser.add_argument("--repeats", type=int, default=1, help="turns of each side; medians are printed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.full:
        if not args.metadata.is_dir():
            sys.exit(f"--full needs the ILSVRC metadata folder; {args.metadata} does not exist (use --metadata)")
        full(args)
    elif args.split:
        split(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
