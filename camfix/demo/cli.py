"""``camfix demo [--out DIR] [--seed N] [--quick]``: the paper's ablation on the built-in synthetic benchmark."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camfix.cli_support import check_int, check_output_path
from camfix.demo.pipeline import DEFAULT, DEFAULT_THREADS, QUICK, format_tables, run_demo

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument(
        "--out", type=Path, default=Path("camfix-demo"), help="folder for results.md, results.json and the PNGs "
        "(default: ./camfix-demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and the batches (default 0)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny run (about 30 s) to check the installation; numbers meaningless"
    )
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help=f"torch CPU threads (default {DEFAULT_THREADS}; the "
        "numbers depend on it; with more on a shared machine, set OMP_WAIT_POLICY=PASSIVE)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the demo; print the tables and where the files are. Returns the exit status."""
    check_int("--seed", args.seed, 0)
    check_int("--threads", args.threads, 1)
    # A folder that cannot be written fails now, not after minutes of training.
    check_output_path("--out", args.out, folder=True)
    config = QUICK if args.quick else DEFAULT
    logger.info(
        "camfix demo: %d training / %d held-out / %d evaluation images, %d epochs per classifier, seed %d -> %s",
        config.train_images, config.val_images, config.eval_images, config.epochs, args.seed, args.out,
    )
    result = run_demo(args.out, seed=args.seed, quick=args.quick, progress=not args.no_progress, threads=args.threads)
    print()
    print(format_tables(result))
    print()
    print(
        f"classifier top-1 accuracy: GAP {result.accuracy['gap']:.1f}%, TAP {result.accuracy['tap']:.1f}%; "
        f"{result.seconds['total']:.0f} s wall, {result.seconds['cpu']:.0f} s CPU"
    )
    for path in result.files:
        print(f"wrote {path}")
    return 0
