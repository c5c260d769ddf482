"""The demo's pictures, as PNG files: dataset samples, maps with boxes per ablation row, IoU-vs-threshold curves.

matplotlib (the ``demo`` extra, ``pip install "camfix[demo]"``) is imported only inside these functions, through
its object-oriented API (``Figure`` with an Agg canvas), so no global backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from camfix.demo.ablation import RowResult
from camfix.demo.data import CLASS_NAMES, SyntheticWSOL
from camfix.viz import draw_localization

__all__ = [
    "new_figure",
    "pick_examples",
    "plot_iou_curves",
    "plot_overlays",
    "plot_samples",
    "save_figure",
    "show_image",
    "tile",
]

PathLike = Union[str, Path]
# Tiles are enlarged by this factor (nearest neighbour) so that boxes and small heads stay visible.
TILE_SCALE = 2
HEAD_COLOR = (255, 210, 0)


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` with its own Agg canvas: no pyplot, no global backend or figure registry.

    Args:
        width: width in inches (100 pixels per inch).
        height: height in inches.

    Returns:
        A ``matplotlib.figure.Figure``; add axes with ``figure.subplots`` or ``figure.add_subplot`` and write it
        with :func:`save_figure`.

    Raises:
        ImportError: matplotlib is not installed (the message says what to install).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f'the demo pictures need matplotlib ({error}); install it with  pip install "camfix[demo]"'
        ) from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: PathLike) -> Path:
    """Render ``figure`` and write it as a PNG with a 256-colour palette.

    The palette makes the file a third of the size of a true-colour PNG of these grainy pictures, with no
    visible difference at this scale.

    Args:
        figure: a figure from :func:`new_figure`.
        path: the PNG to write (its folders are created).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from PIL import Image  # matplotlib's own dependency

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.canvas.draw()
    rgb = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _enlarge(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, None, fx=TILE_SCALE, fy=TILE_SCALE, interpolation=cv2.INTER_NEAREST)


def _enlarge_boxes(boxes: np.ndarray) -> np.ndarray:
    """Inclusive boxes in the enlarged tile: pixel ``x`` covers ``[x * s, x * s + s - 1]``; no-box rows stay."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    scaled = boxes * TILE_SCALE + np.array([0, 0, TILE_SCALE - 1, TILE_SCALE - 1])
    return np.where(boxes[:, :1] < 0, boxes, scaled)


def tile(
    image: np.ndarray,
    saliency: Optional[np.ndarray] = None,
    predicted: Optional[np.ndarray] = None,
    truth: Optional[np.ndarray] = None,
) -> np.ndarray:
    """A :func:`camfix.viz.draw_localization` picture enlarged ``TILE_SCALE`` times (nearest neighbour), so that
    boxes and small heads stay visible; the boxes are drawn on the enlarged pixels.

    Args:
        image: uint8 RGB image ``(H, W, 3)``.
        saliency: optional map ``(H, W)`` in ``[0, 1]``, overlaid as a heat map.
        predicted: optional inclusive boxes ``(4,)`` or ``(M, 4)`` in image pixels, drawn green;
            :data:`~camfix.NO_BOX` rows are skipped.
        truth: optional ground-truth boxes ``(4,)`` or ``(M, 4)``, drawn red.

    Returns:
        uint8 RGB ``(TILE_SCALE * H, TILE_SCALE * W, 3)``.
    """
    return draw_localization(
        _enlarge(image),
        None if saliency is None else _enlarge(saliency),
        None if predicted is None else _enlarge_boxes(predicted),
        None if truth is None else _enlarge_boxes(truth),
        thickness=2,
    )


def show_image(axis: Any, image: np.ndarray, title: str = "") -> None:
    """Draw an image on a matplotlib axis, pixel for pixel (nearest neighbour), without ticks.

    Args:
        axis: a matplotlib ``Axes``.
        image: ``(H, W, 3)`` uint8 RGB, e.g. a :func:`tile`.
        title: the axis title (small font); ``""`` (default) for none.
    """
    axis.imshow(image, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    if title:
        axis.set_title(title, fontsize=7)


def pick_examples(data: SyntheticWSOL, count: int) -> List[int]:
    """Images to show, spread over object sizes.

    Args:
        data: a split of the synthetic benchmark.
        count: how many (at most ``len(data)``).

    Returns:
        Indices at evenly spaced quantiles of the object area, smallest object first.
    """
    order = np.argsort(data.masks.sum(axis=(1, 2)), kind="stable")
    positions = np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int)
    return [int(order[p]) for p in positions]


def plot_samples(data: SyntheticWSOL, path: PathLike, per_class: int = 5) -> Path:
    """Grid of ``per_class`` images of every class, plus the ground truth of the last one (mask, head, box).

    Args:
        data: a split of the synthetic benchmark.
        path: the PNG to write (folders are created).
        per_class: images shown per class (columns), at least 1.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    classes = len(CLASS_NAMES)
    figure = new_figure(1.0 * (per_class + 1) + 1.2, 1.0 * classes + 0.3)
    axes = figure.subplots(classes, per_class + 1, squeeze=False)
    for label, name in enumerate(CLASS_NAMES):
        indices = np.flatnonzero(data.labels == label)[:per_class]
        for column in range(per_class):
            if column < len(indices):
                show_image(axes[label, column], data.images[indices[column]])
            else:
                axes[label, column].axis("off")
        if len(indices):
            index = indices[-1]
            truth = np.zeros_like(data.images[index])
            truth[data.masks[index]] = 255
            truth[data.part_masks[index]] = HEAD_COLOR
            show_image(axes[label, per_class], tile(truth, truth=data.boxes[index]))
        else:
            axes[label, per_class].axis("off")
        axes[label, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    axes[0, per_class].set_title("ground truth", fontsize=8)
    figure.subplots_adjust(left=0.16, right=0.99, top=0.97, bottom=0.01, wspace=0.05, hspace=0.05)
    return save_figure(figure, path)


def plot_overlays(data: SyntheticWSOL, results: Sequence[RowResult], indices: Sequence[int], path: PathLike) -> Path:
    """Images (rows) with each ablation row's map overlaid (columns), predicted box green, ground truth red.

    Args:
        data: the evaluation split the results were computed on.
        results: :func:`camfix.demo.ablation.evaluate_rows`'s output.
        indices: images to show, e.g. :func:`pick_examples`.
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    columns = len(results) + 1
    figure = new_figure(1.25 * columns, 1.3 * len(indices) + 0.2)
    axes = figure.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        show_image(axes[row, 0], tile(data.images[index], truth=data.boxes[index]), "image" if row == 0 else "")
        for column, result in enumerate(results, start=1):
            picture = tile(
                data.images[index], result.maps[index].numpy(), result.boxes[index].numpy(), data.boxes[index]
            )
            show_image(axes[row, column], picture, result.row.name if row == 0 else "")
    figure.subplots_adjust(left=0.01, right=0.99, top=0.94, bottom=0.01, wspace=0.04, hspace=0.04)
    return save_figure(figure, path)


def plot_iou_curves(results: Sequence[RowResult], path: PathLike) -> Path:
    """IoU (percent) against the saliency threshold for every row, in one plot, peaks marked.

    A row with the CRF is drawn solid, one without dashed, in the colour of the row with the same fixes otherwise
    (Baseline and +CRF share a colour, +PaS and +CRF+PaS another, ...).

    Args:
        results: :func:`camfix.demo.ablation.evaluate_rows`'s output.
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    figure = new_figure(8.0, 4.0)
    axis = figure.subplots()
    thresholds = np.arange(256) / 255
    colours: Dict[Tuple[str, bool, bool], str] = {}
    for result in results:
        fixes = (result.row.classifier, result.row.pas, result.row.nwc)
        colour = colours.setdefault(fixes, f"C{len(colours)}")
        style = "-" if result.row.crf else "--"
        label = f"{result.row.name} (peak {result.peak_iou:.1f})"
        axis.plot(thresholds, result.iou_curve, style, color=colour, label=label)
        axis.plot([result.peak_threshold], [result.peak_iou], "o", color=colour, markersize=4)
    axis.set_xlabel("threshold on the saliency map")
    axis.set_ylabel("IoU with the ground-truth masks (%)")
    axis.set_xlim(0, 1)
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    figure.tight_layout()
    return save_figure(figure, path)
