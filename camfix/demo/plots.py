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
from camfix.viz import GROUND_TRUTH_COLOR, PREDICTED_COLOR, draw_localization

__all__ = [
    "mask_tile",
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
#: Tint and outline of a binary (CRF) mask in :func:`mask_tile`.
MASK_COLOR = (0, 235, 255)
#: Outline of a mask drawn over a heat map or an image.
OUTLINE_COLOR = (255, 255, 255)


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


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it (a one-pixel inner outline), bool."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~inner.astype(bool)


def mask_tile(
    image: np.ndarray, mask: np.ndarray, predicted: Optional[np.ndarray] = None, truth: Optional[np.ndarray] = None
) -> np.ndarray:
    """A binary mask over an image, enlarged ``TILE_SCALE`` times: the image dimmed, the mask tinted
    :data:`MASK_COLOR` with a bright outline, boxes as in :func:`tile` (prediction green, ground truth red).

    Used for the CRF's nearly binary output, which a heat map would show as two flat colours.

    Args:
        image: uint8 RGB ``(H, W, 3)``.
        mask: bool ``(H, W)``.
        predicted: optional inclusive boxes ``(4,)`` or ``(M, 4)`` in image pixels.
        truth: optional ground-truth boxes.

    Returns:
        uint8 RGB ``(TILE_SCALE * H, TILE_SCALE * W, 3)``.
    """
    big = _enlarge(image).astype(np.float32)
    big_mask = _enlarge(mask.astype(np.uint8)).astype(bool)
    picture = 0.55 * big
    picture[big_mask] = 0.5 * big[big_mask] + 0.5 * np.asarray(MASK_COLOR, np.float32)
    picture[_outline(big_mask)] = MASK_COLOR
    return draw_localization(
        np.clip(picture, 0, 255).astype(np.uint8),
        None,
        None if predicted is None else _enlarge_boxes(predicted),
        None if truth is None else _enlarge_boxes(truth),
        thickness=2,
    )


def _with_outline(picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``picture`` (an enlarged tile) with the enlarged ``mask``'s outline drawn white."""
    picture = picture.copy()
    picture[_outline(_enlarge(mask.astype(np.uint8)).astype(bool))] = OUTLINE_COLOR
    return picture


def plot_overlays(data: SyntheticWSOL, results: Sequence[RowResult], indices: Sequence[int], path: PathLike) -> Path:
    """Evaluation images (rows) with each ablation row's result (columns), every row and column labelled.

    The first column is the image with its ground-truth box (red) and object outline (white). A row without the
    CRF shows its map as a heat map, the outline of its mask at the held-out operating point (white) and the box of
    its largest region (green); a CRF row shows its mask (the refined probability above 0.5) tinted cyan on the
    dimmed image, with the same boxes. A legend at the bottom says which is which.

    Args:
        data: the evaluation split the results were computed on.
        results: rows of :func:`camfix.demo.ablation.evaluate_rows`, one column each, in the order given.
        indices: images to show, e.g. :func:`pick_examples`.
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from matplotlib import patheffects
    from matplotlib.cm import ScalarMappable
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    columns = len(results) + 1
    figure = new_figure(1.2 * columns + 1.3, 1.25 * len(indices) + 1.3)
    axes = figure.subplots(len(indices), columns, squeeze=False)
    for row, index in enumerate(indices):
        truth_picture = _with_outline(tile(data.images[index], truth=data.boxes[index]), data.masks[index])
        show_image(axes[row, 0], truth_picture, "image, ground truth" if row == 0 else "")
        area = 100.0 * float(data.masks[index].mean())
        axes[row, 0].set_ylabel(
            f"eval #{index}\n{CLASS_NAMES[data.labels[index]]}\nobject {area:.0f}%", fontsize=7, rotation=0,
            ha="right", va="center",
        )
        for column, result in enumerate(results, start=1):
            mask = result.masks[index].numpy()
            box = result.boxes[index].numpy()
            if result.row.crf:
                picture = mask_tile(data.images[index], mask, box, data.boxes[index])
                title = f"{result.row.name}\nCRF, t = {result.operating_point:.3g}"
            else:
                picture = _with_outline(tile(data.images[index], result.maps[index].numpy(), box, data.boxes[index]), mask)
                title = f"{result.row.name}\nmap > {result.operating_point:.3f}"
            show_image(axes[row, column], picture, title if row == 0 else "")
    legend = [
        Line2D([], [], color=np.array(PREDICTED_COLOR) / 255, linewidth=2, label="predicted box (largest region)"),
        Line2D([], [], color=np.array(GROUND_TRUTH_COLOR) / 255, linewidth=2, label="ground-truth box"),
        Line2D([], [], color=np.array(OUTLINE_COLOR) / 255, linewidth=1.5,
               path_effects=[patheffects.withStroke(linewidth=3, foreground="black")],
               label="white outline: object (first column), mask at the operating point (others)"),
        Patch(facecolor=np.array(MASK_COLOR) / 255, label="CRF mask (refined probability > 0.5)"),
    ]
    figure.legend(handles=legend, loc="lower left", bbox_to_anchor=(0.08, 0.0), ncol=2, fontsize=7, frameon=False)
    # The heat map's colour scale (camfix.viz's jet overlay), beside the legend.
    scale = figure.add_axes([0.74, 0.42 / figure.get_figheight(), 0.2, 0.09 / figure.get_figheight()])
    bar = figure.colorbar(ScalarMappable(cmap="jet"), cax=scale, orientation="horizontal")
    bar.set_ticks([0, 0.5, 1])
    bar.ax.tick_params(labelsize=6)
    bar.set_label("heat map: value of the map (no CRF)", fontsize=7)
    figure.text(
        0.5, 0.035 + 0.35 / figure.get_figheight(),
        "operating points (map threshold theta, CRF's t) chosen on the held-out split; rows: smallest to largest object",
        ha="center", fontsize=7,
    )
    bottom = 0.75 / figure.get_figheight()
    figure.subplots_adjust(left=1.3 / figure.get_figwidth(), right=0.995, top=1 - 0.45 / figure.get_figheight(),
                           bottom=bottom, wspace=0.04, hspace=0.04)
    return save_figure(figure, path)


def plot_iou_curves(results: Sequence[RowResult], path: PathLike) -> Path:
    """IoU against the operating point, on the held-out split (where it is chosen) and on the evaluation split.

    Left: each row's held-out IoU at every operating point tried, its choice marked; a row without the CRF sweeps
    the threshold of its map (dashed), a CRF row its ``t`` (solid, one marker per refinement). Right: the
    evaluation split: the IoU curve of each row without the CRF (dashed, its Peak IoU a ring) and every row's IoU
    at its held-out operating point (a dot), the score in the tables. A CRF row has the colour of the row with
    the same other fixes (Baseline and +CRF share one, +PaS and +CRF+PaS another, ...).

    Args:
        results: :func:`camfix.demo.ablation.evaluate_rows`'s output.
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from matplotlib.lines import Line2D

    figure = new_figure(12.0, 4.6)
    held_out, evaluation = figure.subplots(1, 2, sharey=True)
    handles: List[Any] = []
    colours: Dict[Tuple[str, bool, bool], str] = {}
    for result in results:
        fixes = (result.row.classifier, result.row.pas, result.row.nwc)
        colour = colours.setdefault(fixes, f"C{len(colours)}")
        selection = result.selection
        if result.row.crf:
            held_out.plot(selection.candidates, selection.iou, "-", marker=".", markersize=4, color=colour)
        else:
            held_out.plot(selection.candidates, selection.iou, "--", color=colour)
            evaluation.plot(np.arange(256) / 255, result.iou_curve, "--", color=colour, linewidth=1)
            evaluation.plot([result.peak_threshold], [result.peak_iou], "o", color=colour, markersize=6,
                            markerfacecolor="none")
        held_out.plot([selection.chosen], [selection.best_iou], "o", color=colour, markersize=5)
        evaluation.plot([selection.chosen], [result.iou], "o", color=colour, markersize=5)
        handles.append(
            Line2D([], [], color=colour, linestyle="-" if result.row.crf else "--", marker="o", markersize=4,
                   label=f"{result.row.name}: IoU {result.iou:.1f} at {'t' if result.row.crf else 'theta'} = "
                   f"{selection.chosen:.3g}")
        )
    held_out.set_title("held-out split: each row's operating point is chosen here", fontsize=9)
    evaluation.set_title("evaluation split: dot = the tables' IoU, ring = Peak IoU (no CRF)", fontsize=9)
    for axis in (held_out, evaluation):
        axis.set_xlabel("operating point: threshold theta of the map (dashed) / the CRF's t (solid)", fontsize=8)
        axis.set_xlim(0, 1)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    held_out.set_ylabel("IoU with the ground-truth masks (%)")
    evaluation.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    figure.tight_layout()
    return save_figure(figure, path)
