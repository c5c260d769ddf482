"""Box metrics: camfix vs the reference evaluator's per-image, per-threshold loop, measured in the same run.

    python benchmarks/bench_metrics.py [--maps 1000] [--size 224] [--intervals 0.01 0.001] [--seed 0] [--workers N]
    python benchmarks/bench_metrics.py --full [--intervals 0.01] [--workers N]
    python benchmarks/bench_metrics.py --split [--maps 200] [--intervals 0.01]

Default: ``--maps`` CAM-like score maps (a 7x7 random activation map, cubed, bicubic-upsampled to ``--size`` and
min-max normalised, as a CAM is made) with one or two ground-truth boxes each. For every interval, the baseline is
the reference's procedure written out (``reference_way``: quantise, and per threshold ``cv2.threshold`` on
``int(tau * max)``, ``cv2.findContours``, the largest ``contourArea`` or every contour, ``cv2.boundingRect``,
then its tiled IoU), once for MaxBoxAcc (largest contour) and once for MaxBoxAccV2 (every contour); camfix is
``BoxAccuracy(multi_contour=False)`` and ``BoxAccuracy()`` in reference mode, with ``--workers`` threads (default:
one per usable CPU, camfix's default). Prints wall and CPU seconds (CPU: all threads of the process), the ratios
baseline/camfix and whether the accuracies are identical. Both sides run with the garbage collector off, as
:mod:`timeit` does.

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
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

import camfix.metrics as metrics
from camfix.crf import usable_cpus
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


def reference_way(score_map: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float], multi: bool) -> List[float]:
    """clovaai/wsolevaluation's compute_bboxes_from_scoremaps + calculate_multiple_iou, written out."""
    height, width = score_map.shape
    image = np.expand_dims((score_map * 255).astype(np.uint8), 2)
    boxes_per_threshold, counts = [], []
    for tau in thresholds:
        _, binary = cv2.threshold(image, int(tau * np.max(image)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        if len(contours) == 0:
            boxes_per_threshold.append(np.asarray([[0, 0, 0, 0]]))
            counts.append(1)
            continue
        if not multi:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        boxes_per_threshold.append(np.asarray(boxes))
        counts.append(len(contours))
    boxes = np.concatenate(boxes_per_threshold, axis=0)
    count_a, count_b = boxes.shape[0], gt_boxes.shape[0]
    box_a = np.tile(boxes, count_b)
    box_a = np.expand_dims(box_a, axis=1).reshape((count_a, count_b, -1))
    box_b = np.tile(gt_boxes, count_a)
    box_b = np.transpose(np.expand_dims(box_b, axis=1).reshape((count_b, count_a, -1)), (1, 0, 2))
    min_x = np.maximum(box_a[:, :, 0], box_b[:, :, 0])
    min_y = np.maximum(box_a[:, :, 1], box_b[:, :, 1])
    max_x = np.minimum(box_a[:, :, 2], box_b[:, :, 2])
    max_y = np.minimum(box_a[:, :, 3], box_b[:, :, 3])
    inter = np.maximum(0, max_x - min_x + 1) * np.maximum(0, max_y - min_y + 1)
    area_a = (box_a[:, :, 2] - box_a[:, :, 0] + 1) * (box_a[:, :, 3] - box_a[:, :, 1] + 1)
    area_b = (box_b[:, :, 2] - box_b[:, :, 0] + 1) * (box_b[:, :, 3] - box_b[:, :, 1] + 1)
    ious = inter / (area_a + area_b - inter)
    best, start = [], 0
    for count in counts:
        best.append(max(ious.max(1)[start : start + count]))
        start += count
    return best


def reference_way_accuracy(
    maps: np.ndarray, boxes: List[np.ndarray], thresholds: np.ndarray, multi: bool
) -> List[float]:
    """The reference's BoxEvaluator.accumulate/compute over all maps: max accuracy per IoU threshold."""
    correct = {delta: np.zeros(len(thresholds)) for delta in (30, 50, 70)}
    threshold_list = list(thresholds)
    for score_map, gt_boxes in zip(maps, boxes):
        best = np.asarray(reference_way(score_map, gt_boxes, threshold_list, multi))
        for delta in correct:
            correct[delta][np.where(best >= (delta / 100))[0]] += 1
    return [float((correct[delta] * 100.0 / float(len(maps))).max()) for delta in (30, 50, 70)]


def camfix_accuracy(
    maps: Tensor, boxes: List[Tensor], thresholds: np.ndarray, multi: bool, workers: Optional[int] = None
) -> List[float]:
    metric = metrics.BoxAccuracy(thresholds, multi_contour=multi, workers=workers)
    for start in range(0, len(maps), 100):
        metric.update(maps[start : start + 100], boxes[start : start + 100])
    result = metric.compute()
    return list(result.max_by_iou(multi=multi).values())


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


def compare(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    maps = cam_like_maps(rng, args.maps, args.size)
    boxes = random_boxes(rng, args.maps, args.size)
    print(f"{args.maps} CAM-like maps of {args.size}x{args.size}, seed {args.seed}; native sweep: "
          f"{'yes' if _native.load() is not None else 'NO (OpenCV fallback)'}; camfix threads: "
          f"{args.workers or usable_cpus()}; load average {os.getloadavg()[0]:.2f}")
    map_tensor, box_tensors = torch.from_numpy(maps), [torch.from_numpy(b) for b in boxes]
    camfix_accuracy(map_tensor[:4], box_tensors[:4], metrics.cam_thresholds(0.1), True)  # warm-up: library load
    header = f"{'interval':>8s}  {'metric':11s}  {'loop wall s':>11s}  {'loop cpu s':>10s}  {'camfix wall s':>13s}  "
    print(header + f"{'camfix cpu s':>12s}  {'ratio (cpu)':>11s}  {'ratio (wall)':>12s}  same")
    for interval in args.intervals:
        thresholds = metrics.cam_thresholds(interval)
        for multi, name in ((False, "MaxBoxAcc"), (True, "MaxBoxAccV2")):
            expected, loop_wall, loop_cpu = timed(lambda: reference_way_accuracy(maps, boxes, thresholds, multi))
            got, fast_wall, fast_cpu = timed(
                lambda: camfix_accuracy(map_tensor, box_tensors, thresholds, multi, args.workers)
            )
            same = "yes" if got == expected else f"NO: {got} vs {expected}"
            print(f"{interval:8g}  {name:11s}  {loop_wall:11.2f}  {loop_cpu:10.2f}  {fast_wall:13.2f}  "
                  f"{fast_cpu:12.2f}  {loop_cpu / fast_cpu:10.1f}x  {loop_wall / fast_wall:11.1f}x  {same}")
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
