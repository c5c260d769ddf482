"""Every seed, mean and spread of several demo runs (one results.json each), as the markdown of docs/demo.md.

    python -m camfix.demo.summary camfix-demo-seed0 camfix-demo-seed1 camfix-demo-seed2 ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from camfix.demo.ablation import NO_CRF_ROWS, ROWS

__all__ = ["load_runs", "summary_table", "main"]

#: (key in results.json, column title) of the secondary table, mean ± spread.
METRICS = (
    ("operating_point", "operating point"),
    ("box_acc_v2", "BoxAccV2"),
    ("gt_known_loc", "GT-known loc"),
    ("top1_loc", "top-1 loc"),
    ("peak_iou", "Peak IoU (sweep)"),
    ("max_box_acc_v2", "MaxBoxAccV2 (sweep)"),
    ("pxap", "PxAP"),
)

#: The rows in the order of the tables: the primary ablation (no CRF), then the paper's rows with the CRF.
ORDER: Tuple[str, ...] = tuple(row.name for row in (ROWS[0],) + NO_CRF_ROWS + ROWS[1:])

#: Consecutive steps whose IoU gain the step table lists: each fix added without the CRF, then the paper's order.
STEPS: Tuple[Tuple[str, str], ...] = tuple(
    zip([ROWS[0].name] + [row.name for row in NO_CRF_ROWS[:-1]], [row.name for row in NO_CRF_ROWS])
) + tuple(zip([row.name for row in ROWS[:-1]], [row.name for row in ROWS[1:]]))


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


def _spread(values: Sequence[float]) -> float:
    # Sample standard deviation (n - 1); a single run has no spread.
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _cell(values: Sequence[Optional[float]], digits: int = 1) -> str:
    if any(value is None for value in values):
        return "-"
    return f"{np.mean(values):.{digits}f} ± {_spread(values):.{digits}f}"  # type: ignore[arg-type]


def _rows_by_name(run: Dict[str, object]) -> Dict[str, Dict[str, object]]:
    return {row["name"]: row for row in run["rows"]}  # type: ignore[index, union-attr]


def summary_table(runs: Sequence[Dict[str, object]]) -> str:
    """Markdown tables of several runs.

    Args:
        runs: as :func:`load_runs` returns them.

    Returns:
        (1) Per row, the IoU at the held-out operating point of every seed, their mean ± sample standard deviation
        and range, and the paper's Peak IoU; (2) the other metrics, mean ± standard deviation; (3) the IoU gain of
        each step of the ablation per seed, and in how many seeds it is ``>= 0``; (4) the classifiers' map
        diagnostics (if recorded); then the classifiers' accuracies.
    """
    by_name = [_rows_by_name(run) for run in runs]
    names = [name for name in ORDER if name in by_name[0]]
    seeds = [run["seed"] for run in runs]
    header = "| Row | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean ± sd | range | paper Peak IoU |"
    lines = [header, "|---|" + "---:|" * (len(seeds) + 3)]
    for name in names:
        values = [float(rows[name]["iou"]) for rows in by_name]
        paper = by_name[0][name].get("paper_peak_iou")
        lines.append(
            f"| {name} | " + " | ".join(f"{value:.1f}" for value in values) + f" | {_cell(values)} | "
            f"{min(values):.1f} - {max(values):.1f} | {'-' if paper is None else f'{paper:.2f}'} |"
        )
    lines += ["", "| Row | " + " | ".join(title for _, title in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name in names:
        cells = [
            _cell([rows[name].get(key) for rows in by_name], 3 if key == "operating_point" else 1) for key, _ in METRICS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    steps = [(a, b) for a, b in STEPS if a in names and b in names]
    if steps:
        lines += [
            "",
            "| step (IoU gain) | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean | seeds with gain >= 0 |",
            "|---|" + "---:|" * (len(seeds) + 2),
        ]
        for before, after in steps:
            gains = [float(rows[after]["iou"]) - float(rows[before]["iou"]) for rows in by_name]
            lines.append(
                f"| {before} -> {after} | " + " | ".join(f"{gain:+.1f}" for gain in gains)
                + f" | {np.mean(gains):+.1f} | {sum(gain >= 0 for gain in gains)} of {len(gains)} |"
            )
    if all("diagnostics" in run for run in runs):
        lines += ["", _diagnostics_table(runs)]
    accuracy = {
        pooling: _cell([run["classifier_top1_accuracy"][pooling] for run in runs])  # type: ignore[index]
        for pooling in runs[0]["classifier_top1_accuracy"]  # type: ignore[union-attr]
    }
    lines += [
        "",
        f"{len(runs)} runs (seeds {', '.join(str(seed) for seed in seeds)}); classifier top-1 accuracy: "
        + ", ".join(f"{pooling.upper()} {cell}%" for pooling, cell in accuracy.items()),
    ]
    return "\n".join(lines)


def _diagnostics_table(runs: Sequence[Dict[str, object]]) -> str:
    from camfix.demo.pipeline import DIAGNOSTICS_COLUMNS

    lines = [
        "| classifier | " + " | ".join(title for _, title in DIAGNOSTICS_COLUMNS) + " |",
        "|---|" + "---:|" * len(DIAGNOSTICS_COLUMNS),
    ]
    for pooling in runs[0]["diagnostics"]:  # type: ignore[union-attr]
        cells = [_cell([run["diagnostics"][pooling][key] for run in runs]) for key, _ in DIAGNOSTICS_COLUMNS]
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
