"""The whole demo: generate the data, train GAP and TAP classifiers, score the rows, write the results."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

import camfix
from camfix._validation import check_int
from camfix.cli_support import atomic_write
from camfix.crf import load_pydensecrf
from camfix.demo.ablation import ALL_ROWS, NO_CRF_ROWS, PAPER_PEAK_IOU, ROWS, RowResult, crf_params_for, evaluate_rows
from camfix.demo.data import CLASS_NAMES, SyntheticWSOL, make_dataset
from camfix.demo.diagnostics import MapDiagnostics, diagnose
from camfix.demo.train import deterministic, predict, train_classifier
from camfix.models import seresnet_small

__all__ = [
    "DEFAULT",
    "QUICK",
    "DemoConfig",
    "DemoResult",
    "CRF_SKIPPED",
    "build_classifier",
    "DIAGNOSTICS_COLUMNS",
    "DEFAULT_THREADS",
    "crf_available",
    "format_diagnostics",
    "format_table",
    "format_tables",
    "main_rows",
    "no_crf_rows",
    "run_demo",
    "write_pictures",
    "write_results",
]

logger = logging.getLogger(__name__)

#: Default torch threads. One keeps a run reproducible (results depend on the thread count) and fast on a busy
#: machine, where OpenMP threads spin-waiting for each other made training steps several times slower (the test
#: suite runs on one thread for the same reason). ``--threads`` raises it on an idle machine.
DEFAULT_THREADS = 1

#: The one line printed when pydensecrf is missing and the demo runs the rows without the CRF only.
CRF_SKIPPED = (
    'CRF rows skipped: pydensecrf is not installed; pip install "camfix[crf]" adds them (it compiles from source and '
    "needs a C++ compiler and the Python headers)"
)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run.

    Attributes:
        image_size: side of the square images in pixels.
        train_images: training images (balanced over the 8 classes).
        val_images: held-out images on which every row's operating point is chosen (the ``"val"`` split).
        eval_images: evaluation images.
        epochs: training epochs of each classifier.
        batch_size: training batch size.
        lr: peak SGD learning rate.
        theta_tap: TAP's ``theta`` (paper 0.05).
    """

    image_size: int = 64
    train_images: int = 3200
    val_images: int = 100
    eval_images: int = 400
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.1
    theta_tap: float = 0.05


#: The default run (docs/demo.md gives its measured CPU and wall time).
DEFAULT = DemoConfig()
#: ``--quick``: a smoke test; the classifiers are barely trained and the numbers mean nothing.
QUICK = DemoConfig(train_images=320, val_images=24, eval_images=48, epochs=2)


@dataclass
class DemoResult:
    """What a run produced: ``rows`` hold the scores and final maps of :data:`~camfix.demo.ablation.ALL_ROWS`
    in that order, or, when pydensecrf is missing (``crf_skipped``), of the rows without the CRF only."""

    config: DemoConfig
    seed: int
    quick: bool
    threads: int
    rows: List[RowResult]
    accuracy: Dict[str, float]
    train_loss: Dict[str, List[float]]
    diagnostics: Dict[str, MapDiagnostics]
    crf_skipped: bool = False
    seconds: Dict[str, float] = field(default_factory=dict)
    files: List[Path] = field(default_factory=list)

    def as_dict(self) -> Dict[str, object]:
        """JSON-ready summary (no maps)."""
        return {
            "seed": self.seed,
            "quick": self.quick,
            "threads": self.threads,
            "config": asdict(self.config),
            "classes": list(CLASS_NAMES),
            "crf_skipped": self.crf_skipped,
            "classifier_top1_accuracy": self.accuracy,
            "train_loss": self.train_loss,
            "diagnostics": {pooling: d.as_dict() for pooling, d in self.diagnostics.items()},
            "rows": [
                {
                    "name": r.row.name,
                    "classifier": r.row.classifier,
                    "crf": r.row.crf,
                    "pas": r.row.pas,
                    "nwc": r.row.nwc,
                    **r.scores(),
                    "paper_peak_iou": PAPER_PEAK_IOU.get(r.row.name),
                    "held_out_curve": {
                        "operating_points": r.selection.candidates.tolist(),
                        "iou": r.selection.iou.round(4).tolist(),
                    },
                }
                for r in self.rows
            ],
            "seconds": self.seconds,
            "versions": {"camfix": camfix.__version__, "torch": torch.__version__, "python": platform.python_version()},
        }


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_classifier(pooling: str, config: DemoConfig) -> nn.Module:
    """The demo's classifier, untrained.

    Args:
        pooling: ``"gap"`` (global average pooling) or ``"tap"`` (``camfix.TAPool(config.theta_tap)``).
        config: the run's sizes (for ``theta_tap``).

    Returns:
        :func:`camfix.models.seresnet_small` with 8 classes and that pooling; its initial weights come from
        torch's global generator (seed it first, as :func:`run_demo` does).
    """
    if pooling not in ("gap", "tap"):
        raise ValueError(f"pooling must be 'gap' or 'tap', got {pooling!r}")
    pool = "avg" if pooling == "gap" else camfix.TAPool(config.theta_tap, flatten=True)
    return seresnet_small(num_classes=len(CLASS_NAMES), global_pool=pool)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the CRF workers); NaN without
    ``resource`` (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def crf_available() -> bool:
    """Whether pydensecrf imports, i.e. whether the demo can run its CRF rows."""
    try:
        load_pydensecrf()
    except ImportError:
        return False
    return True


def run_demo(
    out_dir: Optional[Union[str, Path]] = None,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    config: Optional[DemoConfig] = None,
    threads: int = DEFAULT_THREADS,
) -> DemoResult:
    """Run the ablation end to end; with ``out_dir``, also write results.md, results.json and the pictures.

    Both classifiers start from the same initial weights and see the same batches (same seed): they differ only
    in their pooling. Every row's operating point is chosen on a held-out split (``"val"``), then the row is
    scored on the evaluation split. Kernels are deterministic, so a run is repeatable on a machine with the same
    thread count. Without pydensecrf the rows with the CRF are skipped (``crf_skipped``), the others run.

    Args:
        out_dir: folder for the outputs (created); None writes nothing.
        seed: seeds the data, the initial weights and the batch order.
        quick: use :data:`QUICK` instead of :data:`DEFAULT` (ignored when ``config`` is given).
        progress: show progress bars.
        config: sizes of the run, overriding ``quick``.
        threads: torch intra-op threads for the run (restored afterwards); the numbers depend on it.

    Returns:
        A :class:`DemoResult`.
    """
    seed = check_int("seed", seed, 0)
    threads = check_int("threads", threads, 1)
    config = config or (QUICK if quick else DEFAULT)
    with_crf = crf_available()  # checked before the training, which takes minutes
    rows = ALL_ROWS if with_crf else (ROWS[0],) + NO_CRF_ROWS  # without pydensecrf: CRF_SKIPPED in the tables
    seconds: Dict[str, float] = {}
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with _threads(threads):
        train = make_dataset(config.train_images, seed, "train", config.image_size)
        held_out = make_dataset(config.val_images, seed, "val", config.image_size)
        evaluation = make_dataset(config.eval_images, seed, "eval", config.image_size)
        seconds["data"] = time.perf_counter() - start
        logger.info(
            "generated %d training, %d held-out and %d evaluation images (seed %d)",
            len(train), len(held_out), len(evaluation), seed,
        )
        classifiers: Dict[str, nn.Module] = {}
        losses: Dict[str, List[float]] = {}
        accuracy: Dict[str, float] = {}
        diagnostics: Dict[str, MapDiagnostics] = {}
        for pooling in ("gap", "tap"):
            tick = time.perf_counter()
            with deterministic(seed):
                model = build_classifier(pooling, config)
                losses[pooling] = train_classifier(
                    model, train, config.epochs, seed, config.batch_size, config.lr, f"train {pooling.upper()}", progress,
                    channels_last=True,
                )
            accuracy[pooling] = 100.0 * float(np.mean(predict(model, evaluation) == evaluation.labels))
            diagnostics[pooling] = diagnose(model, evaluation)
            classifiers[pooling] = model
            seconds[f"train_{pooling}"] = time.perf_counter() - tick
            logger.info(
                "%s classifier: final training loss %.3f, top-1 accuracy %.1f%% on the evaluation images",
                pooling.upper(), losses[pooling][-1], accuracy[pooling],
            )
        tick = time.perf_counter()
        results = evaluate_rows(
            classifiers, evaluation, held_out, rows, crf_params_for(config.image_size), progress=progress
        )
        seconds["evaluate"] = time.perf_counter() - tick
    result = DemoResult(
        config, seed, quick and config is QUICK, threads, results, accuracy, losses, diagnostics, not with_crf, seconds
    )
    if out_dir is not None:
        pictures = write_pictures(result, evaluation, Path(out_dir))
    result.seconds["total"] = time.perf_counter() - start
    result.seconds["cpu"] = _cpu_seconds() - cpu_start
    if out_dir is not None:
        result.files = write_results(result, Path(out_dir), pictures)
    return result


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(results: Sequence[RowResult], paper: bool = False) -> str:
    """Rows as a markdown table.

    Args:
        results: scored rows, e.g. :func:`main_rows` or :func:`no_crf_rows` of a run.
        paper: add the paper's Peak IoU (the rows of its Table 1 have one).

    Returns:
        The table, in percent: the operating point chosen on the held-out split, then at that point IoU,
        BoxAccV2, GT-known and top-1 loc, then the threshold sweeps (Peak IoU, MaxBoxAccV2, PxAP; ``-`` for a CRF
        row, whose output is nearly binary).
    """
    header = (
        "| Row | operating point | IoU | BoxAccV2 | GT-known loc | top-1 loc | Peak IoU (sweep) | MaxBoxAccV2 (sweep) "
        "| PxAP |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if paper:
        header, rule = header + " paper Peak IoU |", rule + "---:|"
    lines = [header, rule]
    for r in results:
        point = f"t = {r.operating_point:.2f}" if r.row.crf else f"theta = {r.operating_point:.3f}"
        line = (
            f"| {r.row.name} | {point} | {r.iou:.1f} | {r.box_acc_v2:.1f} | {r.gt_known_loc:.1f} | {r.top1_loc:.1f} | "
            f"{_percent(r.peak_iou)} | {_percent(r.max_box_acc_v2)} | {_percent(r.pxap)} |"
        )
        if paper:
            value = PAPER_PEAK_IOU.get(r.row.name)
            line += f" {'-' if value is None else f'{value:.2f}'} |"
        lines.append(line)
    return "\n".join(lines)


#: (field of :class:`~camfix.demo.diagnostics.MapDiagnostics`, column title) of the diagnostics tables.
DIAGNOSTICS_COLUMNS = (
    ("peak_near_head", "CAM peak near head"),
    ("peak_near_object", "CAM peak near object"),
    ("mean_on_head", "mean CAM head"),
    ("mean_on_body", "mean CAM body"),
    ("mean_on_background", "mean CAM background"),
    ("positive_inside", "P mass inside"),
    ("negative_inside", "Q mass inside"),
    ("object_area", "object area"),
    ("negative_weights", "negative weights"),
)


def format_diagnostics(diagnostics: Dict[str, MapDiagnostics]) -> str:
    """The classifiers' map diagnostics as a markdown table.

    Args:
        diagnostics: ``{"gap": ..., "tap": ...}`` as :attr:`DemoResult.diagnostics`.

    Returns:
        One row per classifier, the columns of :data:`DIAGNOSTICS_COLUMNS`, values in percent.
    """
    lines = [
        "| classifier | " + " | ".join(title for _, title in DIAGNOSTICS_COLUMNS) + " |",
        "|---|" + "---:|" * len(DIAGNOSTICS_COLUMNS),
    ]
    for pooling, measured in diagnostics.items():
        values = measured.as_dict()
        lines.append(f"| {pooling.upper()} | " + " | ".join(f"{values[key]:.1f}" for key, _ in DIAGNOSTICS_COLUMNS) + " |")
    return "\n".join(lines)


def main_rows(result: DemoResult) -> List[RowResult]:
    """The paper's five rows of a run (with the CRF); empty when the run skipped the CRF.

    Args:
        result: a run.

    Returns:
        Its results for :data:`~camfix.demo.ablation.ROWS`, in order; ``[]`` if ``result.crf_skipped``.
    """
    if result.crf_skipped:
        return []
    return [r for r in result.rows if r.row in ROWS]


def no_crf_rows(result: DemoResult) -> List[RowResult]:
    """The rows without the CRF of a run: the primary ablation.

    Args:
        result: a run.

    Returns:
        Its results for the baseline and :data:`~camfix.demo.ablation.NO_CRF_ROWS`, in order.
    """
    return [r for r in result.rows if r.row in (ROWS[0],) + NO_CRF_ROWS]


def write_pictures(result: DemoResult, evaluation: SyntheticWSOL, out_dir: Path) -> List[Path]:
    """Write overlays.png, iou_curves.png and samples.png (:mod:`camfix.demo.plots`).

    Args:
        result: the run.
        evaluation: the evaluation split the run scored.
        out_dir: the output folder (created).

    Returns:
        The files written; none, with a logged warning, when matplotlib is not installed.
    """
    from camfix.demo import plots

    columns = no_crf_rows(result) + main_rows(result)[1:]
    try:
        return [
            plots.plot_overlays(evaluation, columns, plots.pick_examples(evaluation, 6), out_dir / "overlays.png"),
            plots.plot_iou_curves(result.rows, out_dir / "iou_curves.png"),
            plots.plot_samples(evaluation, out_dir / "samples.png"),
        ]
    except ImportError as error:
        logger.warning("pictures skipped: %s", error)
        return []


def write_results(result: DemoResult, out_dir: Path, pictures: List[Path]) -> List[Path]:
    """Write results.json (every number, :meth:`DemoResult.as_dict`) and results.md (the tables).

    Args:
        result: the run.
        out_dir: the output folder (created).
        pictures: the pictures to link from results.md.

    Returns:
        Every file of the run: results.md, results.json, then ``pictures``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    md_path = out_dir / "results.md"
    texts = {
        json_path: json.dumps(result.as_dict(), indent=2) + "\n",
        md_path: _markdown(result, [p.name for p in pictures]),
    }
    for path, text in texts.items():
        with atomic_write(path) as stream:
            stream.write(text.encode())
    return [md_path, json_path, *pictures]


def format_tables(result: DemoResult) -> str:
    """The run's tables as markdown: the rows without the CRF, then the paper's rows (or the line that says how
    to get them), then the classifiers' accuracy and the time taken.

    Args:
        result: a run.

    Returns:
        Markdown text, as printed by ``camfix demo``.
    """
    lines = [
        "Without the CRF (the primary ablation); operating point theta: the threshold of the map chosen on the "
        "held-out split:",
        "",
        format_table(no_crf_rows(result)),
        "",
    ]
    if result.crf_skipped:
        lines += [CRF_SKIPPED, ""]
    else:
        lines += [
            "With the CRF (the paper's Table 1); operating point t: the CRF's, chosen on the held-out split; the "
            "mask is the refined probability above 0.5:",
            "",
            format_table(main_rows(result), paper=True),
            "",
        ]
    lines.append(
        f"Metrics in percent on {len(result.rows[0].maps)} evaluation images; IoU, BoxAccV2, GT-known and top-1 loc "
        "at the operating point, the sweeps at their best threshold on the evaluation images themselves."
    )
    return "\n".join(lines)


def _markdown(result: DemoResult, pictures: List[str]) -> str:
    config = result.config
    command = f"camfix demo --seed {result.seed}" + (" --quick" if result.quick else "")
    if result.threads != DEFAULT_THREADS:
        command += f" --threads {result.threads}"
    lines = [
        "# camfix demo: the LID 2020 Table 1 ablation on synthetic data",
        "",
        f"Command: `{command}`. Ground-truth-class maps of {config.image_size}x{config.image_size}-pixel images; "
        f"every operating point chosen on {config.val_images} held-out images.",
        "",
        format_tables(result),
        "",
        f"Classifiers (SE-ResNet, {config.epochs} epochs on {config.train_images} images): top-1 accuracy "
        f"GAP {result.accuracy['gap']:.1f}%, TAP (theta {config.theta_tap}) {result.accuracy['tap']:.1f}%.",
        "",
        "The paper's column is ImageNet-1K with a ResNet50-SE (LID 2020, Table 1); compare directions, not values.",
        "",
        "What the classifiers' maps look like (GT class, percent; see camfix.demo.diagnostics):",
        "",
        format_diagnostics(result.diagnostics),
        "",
        f"Time: {result.seconds['total']:.0f} s wall, {result.seconds['cpu']:.0f} s CPU (user + system, CRF workers "
        "included).",
        "",
    ]
    lines += [f"![{name}]({name})" for name in pictures]
    return "\n".join(lines) + "\n"
