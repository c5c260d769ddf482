"""Mean and spread of several demo runs (one results.json each), as the markdown table of docs/demo.md.

    python -m camfix.demo.summary camfix-demo-seed0 camfix-demo-seed1 camfix-demo-seed2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["load_runs", "summary_table", "main"]

METRICS = (("peak_iou", "Peak IoU"), ("max_box_acc_v2", "MaxBoxAccV2"), ("pxap", "PxAP"), ("top1_loc", "top-1 loc"))


def load_runs(folders: Sequence[Path]) -> List[Dict[str, object]]:
    """Read the results of several runs.

    Args:
        folders: output folders of ``camfix demo --out``.

    Returns:
        The parsed results.json of each folder, in order.

    Raises:
        FileNotFoundError: a folder has no results.json.
        ValueError: no folder, or runs of different configurations or rows, or a seed given twice.
    """
    runs = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"no results.json in {folder} (run `camfix demo --out {folder}` first)")
        runs.append(json.loads(path.read_text()))
    if not runs:
        raise ValueError("folders must name at least one demo output folder")
    first = runs[0]
    for run in runs[1:]:
        if run["config"] != first["config"] or [r["name"] for r in run["rows"]] != [r["name"] for r in first["rows"]]:
            raise ValueError("the runs differ in configuration or rows; summarise runs of the same demo version only")
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the runs must have distinct seeds, got {seeds}")
    return runs


def _cell(values: np.ndarray) -> str:
    # Sample standard deviation (n - 1); a single run has no spread.
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.1f} ± {spread:.1f}"


def summary_table(runs: Sequence[Dict[str, object]]) -> str:
    """Markdown tables of several runs.

    Args:
        runs: as :func:`load_runs` returns them.

    Returns:
        Per row, mean ± sample standard deviation over the runs of each metric (percent), the range of Peak IoU
        and the paper's Peak IoU; the classifiers' map diagnostics likewise (if recorded); then the classifiers'
        accuracies.
    """
    names = [row["name"] for row in runs[0]["rows"]]
    header = "| Row | " + " | ".join(title for _, title in METRICS) + " | Peak IoU range | paper Peak IoU |"
    lines = [header, "|---|" + "---:|" * (len(METRICS) + 2)]
    for index, name in enumerate(names):
        rows = [run["rows"][index] for run in runs]
        cells = [_cell(np.array([row[key] for row in rows])) for key, _ in METRICS]
        peaks = [row["peak_iou"] for row in rows]
        paper: Optional[float] = rows[0]["paper_peak_iou"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {min(peaks):.1f} - {max(peaks):.1f} | "
            f"{'-' if paper is None else f'{paper:.2f}'} |"
        )
    accuracy = {
        pooling: _cell(np.array([run["classifier_top1_accuracy"][pooling] for run in runs]))
        for pooling in runs[0]["classifier_top1_accuracy"]
    }
    if all("diagnostics" in run for run in runs):
        lines += ["", _diagnostics_table(runs)]
    seeds = ", ".join(str(run["seed"]) for run in runs)
    lines += [
        "",
        f"{len(runs)} runs (seeds {seeds}); classifier top-1 accuracy: "
        + ", ".join(f"{pooling.upper()} {cell}%" for pooling, cell in accuracy.items()),
    ]
    return "\n".join(lines)


def _diagnostics_table(runs: Sequence[Dict[str, object]]) -> str:
    from camfix.demo.pipeline import DIAGNOSTICS_COLUMNS

    lines = [
        "| classifier | " + " | ".join(title for _, title in DIAGNOSTICS_COLUMNS) + " |",
        "|---|" + "---:|" * len(DIAGNOSTICS_COLUMNS),
    ]
    for pooling in runs[0]["diagnostics"]:
        cells = [_cell(np.array([run["diagnostics"][pooling][key] for run in runs])) for key, _ in DIAGNOSTICS_COLUMNS]
        lines.append(f"| {pooling.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m camfix.demo.summary FOLDER...``: print the tables; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m camfix.demo.summary", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of `camfix demo --out`")
    args = parser.parse_args(argv)
    try:
        print(summary_table(load_runs(args.folders)))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
