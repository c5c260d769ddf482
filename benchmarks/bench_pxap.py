"""Pixel metrics: camfix's PxAP and Peak IoU against the unmodified reference evaluator's PxAP, same maps, same run.

    CAMFIX_REFERENCE_DIR=/tmp/wsolevaluation python benchmarks/bench_pxap.py [--maps 1000] [--size 224]
        [--intervals 0.01 0.001] [--repeats 3] [--batch 100] [--seed 0]

``--maps`` CAM-like score maps (as in ``bench_metrics.py``, float64) with masks from another CAM-like map
(``> 0.5``) and, on every other image, an ignore region (a box, minus the foreground). The reference is
clovaai/wsolevaluation's ``MaskEvaluator`` (``accumulate`` per map, then ``compute``) imported unmodified from
``$CAMFIX_REFERENCE_DIR`` (see ``benchmarks/_reference.py`` for what is put around it: the masks are looked up in
memory instead of read from PNG files); without it that side is skipped with a message. camfix is ``PxAP``
(reference mode) with its compiled kernel and without it (its pure NumPy path), and ``PeakIoU`` at the same
thresholds, updated in batches of ``--batch`` maps. Everything runs in one thread. All sides run with the garbage
collector off and take turns ``--repeats`` times; printed are the medians of wall and CPU seconds, the ratios
reference/side, whether the PxAPs are identical, and the most memory each side holds at once through NumPy and
Python (tracemalloc, in a separate untimed run).

A last line times ``MeanIoU`` (21 classes, uint8 label maps from the same maps) with the compiled kernel and with
camfix's own pure torch path: the reference evaluator has no mIoU.
"""

from __future__ import annotations

import argparse
import gc
import os
import tracemalloc
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Tuple, Union

import numpy as np
import torch

import _reference
import camfix.metrics as metrics
from bench_metrics import cam_like_maps, take_turns
from camfix.metrics import _native

Side = Callable[[], object]


def make_data(seed: int, count: int, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` float64 maps, bool masks and bool ignore regions of ``size x size``."""
    rng = np.random.default_rng(seed)
    maps = cam_like_maps(rng, count, size)
    masks = cam_like_maps(rng, count, size) > 0.5
    ignore = np.zeros_like(masks)
    for index in range(0, count, 2):
        x0, y0 = rng.integers(0, size // 2, 2)
        x1, y1 = rng.integers(size // 2, size, 2)
        ignore[index, y0:y1, x0:x1] = True
    return maps, masks, ignore


@contextmanager
def without_kernels() -> Iterator[None]:
    """camfix's pure paths, as where the extension is not built."""
    load = _native.load
    _native.load = lambda: None
    try:
        yield
    finally:
        _native.load = load


def peak_mib(fn: Side) -> float:
    """The most memory ``fn()`` holds at once through NumPy and Python (tracemalloc traces neither torch's
    allocator nor C's malloc: camfix's kernel itself holds O(thresholds))."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="maps per camfix update")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    evaluation = _reference.load()
    maps, masks, ignore = make_data(args.seed, args.maps, args.size)
    encoded = _reference.encode_masks(masks, ignore)
    map_tensor, mask_tensor, ignore_tensor = (torch.from_numpy(a) for a in (maps, masks, ignore))
    print(f"{args.maps} CAM-like maps of {args.size}x{args.size} (float64), seed {args.seed}; compiled kernels: "
          f"{'yes' if _native.load() is not None else 'NO (pure NumPy path)'}; camfix batches of {args.batch}; "
          f"{args.repeats} turns, medians; load average {os.getloadavg()[0]:.2f}")

    def updates(metric: Union[metrics.PxAP, metrics.PeakIoU], pure: bool = False) -> Side:
        def run() -> object:
            metric.reset()
            for start in range(0, args.maps, args.batch):
                batch = slice(start, start + args.batch)
                metric.update(map_tensor[batch], mask_tensor[batch], ignore_tensor[batch])
            return metric.compute()

        def run_pure() -> object:
            with without_kernels():
                return run()

        return run_pure if pure else run

    print(f"{'interval':>8s}  {'side':24s}  {'wall s':>7s}  {'cpu s':>6s}  {'ref/side wall':>13s}  "
          f"{'ref/side cpu':>12s}  {'peak MiB':>8s}  result")
    for interval in args.intervals:
        thresholds = metrics.cam_thresholds(interval)
        sides: Dict[str, Side] = {}
        if evaluation is not None:

            def reference() -> object:
                evaluator = _reference.mask_evaluator(evaluation, encoded, thresholds)
                for index in range(args.maps):
                    evaluator.accumulate(maps[index], str(index))
                return float(_reference.quiet_compute(evaluator))

            sides["reference PxAP"] = reference
        sides["camfix PxAP"] = updates(metrics.PxAP(thresholds))
        sides["camfix PxAP, no kernel"] = updates(metrics.PxAP(thresholds), pure=True)
        sides["camfix PeakIoU"] = updates(metrics.PeakIoU(thresholds))
        results = take_turns(sides, args.repeats)
        reference_result = results.get("reference PxAP")
        for name, (value, wall, cpu) in results.items():
            if name == "camfix PeakIoU":
                shown = f"peak IoU {value.peak:.4f}"
            else:
                number = value if name == "reference PxAP" else value.pxap
                shown = f"PxAP {number!r}"
                if reference_result is not None and name != "reference PxAP":
                    shown += ", identical" if number == reference_result[0] else ", DIFFERS"
            ratios = f"{'':13s}  {'':12s}"
            if reference_result is not None and name != "reference PxAP":
                ratios = f"{reference_result[1] / wall:12.1f}x  {reference_result[2] / cpu:11.1f}x"
            print(f"{interval:8g}  {name:24s}  {wall:7.3f}  {cpu:6.3f}  {ratios}  {peak_mib(sides[name]):8.2f}  "
                  f"{shown}")

    other = cam_like_maps(np.random.default_rng(args.seed + 1), args.maps, args.size)
    preds, targets = (torch.from_numpy(np.minimum((a * 21).astype(np.uint8), 20)) for a in (maps, other))

    def miou() -> object:
        metric = metrics.MeanIoU(21)
        for start in range(0, args.maps, args.batch):
            metric.update(preds[start : start + args.batch], targets[start : start + args.batch])
        return metric.compute().miou

    def miou_pure() -> object:
        with without_kernels():
            return miou()

    result = take_turns({"kernel": miou, "pure": miou_pure}, args.repeats)
    (kernel_value, kernel_wall, kernel_cpu), (pure_value, pure_wall, pure_cpu) = result["kernel"], result["pure"]
    same = "identical" if kernel_value == pure_value else f"DIFFERS: {kernel_value!r} vs {pure_value!r}"
    print(f"MeanIoU, 21 classes, uint8 labels: kernel {kernel_wall:.3f} s wall, {kernel_cpu:.3f} s cpu; pure torch "
          f"path {pure_wall:.3f} s wall, {pure_cpu:.3f} s cpu ({pure_cpu / kernel_cpu:.1f}x cpu); mIoU {same}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
