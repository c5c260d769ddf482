"""Make the pictures of docs/fixes.md with camfix itself, on the built-in synthetic data, and print their numbers.

    python docs/make_figures.py [--out docs/images] [--seed 0] [--train-images 3200] [--epochs 8]

The demo's two classifiers (:func:`camfix.demo.pipeline.build_classifier`: the same SE-ResNet, once with global
average pooling, once with TAP; same initial weights, same batches) are trained on the CPU (about two minutes on
one core with the defaults), then every picture is computed from them on the evaluation split:

- ``fix-tap.png``: what each pooling makes of a channel's activation area (pooled value over the channel's
  maximum, against the fraction of positions above ``theta_tap * max``), the classifier weights each model
  learned against the areas of those channels, and GAP's and TAP's maps of a few images;
- ``fix-nwc.png``: where the features with negative classifier weights fire (intersection over area with the
  object, the analysis of the paper's Figure 3), and CAM without and with NWC on a few images;
- ``fix-pas.png``: one map thresholded at ``theta_loc * max`` and at ``theta_loc * percentile_98``, the two
  masks and boxes against the ground truth.

The numbers the script prints are the ones docs/fixes.md quotes. Training runs on one torch thread with
deterministic kernels, so a run repeats exactly on the same machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

import camfix
from camfix.demo.data import SyntheticWSOL, make_dataset
from camfix.demo.pipeline import DemoConfig, build_classifier
# The demo's own figure helpers, so that these pictures look like its pictures: a matplotlib Figure without
# pyplot, a palette PNG, tiles enlarged 2x with the boxes drawn on the enlarged pixels.
from camfix.demo.plots import new_figure, pick_examples, save_figure, show_image, tile
from camfix.demo.train import deterministic, predict, to_model_input, train_classifier
from camfix.metrics import box_iou, max_box_acc
from camfix.viz import image_grid

# The paper's values (LID 2020): theta_tap = 0.05 and the 98th percentile; theta_loc as camfix's default (the ECCV
# code's 0.35).
THETA_TAP = 0.05
PERCENTILE = 98.0
THETA_LOC = 0.35
# Examples shown in the bottom rows: spread over object sizes, as the demo's overlays.
EXAMPLES = 4
GAP_COLOR, TAP_COLOR, NEGATIVE_COLOR = "tab:blue", "tab:orange", "tab:red"


def matched_ious(boxes: Tensor, truth: Tensor) -> np.ndarray:
    """``(N,)`` IoU of each box with the ground-truth box of its row (0 for the no-box sentinel)."""
    return box_iou(boxes, truth).diagonal().numpy()


def train_models(data: SyntheticWSOL, config: DemoConfig, seed: int) -> Dict[str, nn.Module]:
    models = {}
    for pooling in ("gap", "tap"):
        with deterministic(seed):
            model = build_classifier(pooling, config)
            train_classifier(model, data, config.epochs, seed, config.batch_size, config.lr, f"train {pooling}",
                             progress=sys.stderr.isatty())
        models[pooling] = model.eval()
    return models


def activation_areas(features: Tensor) -> Tensor:
    """``(N, C)`` fraction of each channel's positions above ``theta_tap * max`` (TAP's support)."""
    peak = features.amax(dim=(2, 3), keepdim=True)
    return (features > THETA_TAP * peak).float().mean(dim=(2, 3))


def class_channel_areas(areas: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(K, C)`` mean activation area of each channel over the images of each class."""
    return torch.stack([areas[labels == k].mean(dim=0) for k in range(num_classes)])


def binned_median(x: np.ndarray, y: np.ndarray, bins: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    index = np.digitize(x, bins) - 1
    centres, medians = [], []
    for b in range(len(bins) - 1):
        chosen = y[index == b]
        if len(chosen) >= 10:
            centres.append((bins[b] + bins[b + 1]) / 2)
            medians.append(float(np.median(chosen)))
    return np.array(centres), np.array(medians)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y)[0])


def figure_tap(models: Dict[str, nn.Module], data: SyntheticWSOL, out: Path) -> Dict[str, float]:
    inputs, labels = to_model_input(data.images), torch.from_numpy(data.labels)
    numbers: Dict[str, float] = {}
    figure = new_figure(11.0, 8.6)
    grid = figure.add_gridspec(2, 2, height_ratios=[1.0, 1.35])
    pooled_axis, weight_axis = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    rng = np.random.default_rng(0)
    bins = np.linspace(0, 1, 21)
    for pooling, color in (("gap", GAP_COLOR), ("tap", TAP_COLOR)):
        model = models[pooling]
        with torch.no_grad():
            features = model.forward_features(inputs)
        areas = activation_areas(features)
        peak = features.amax(dim=(2, 3))
        pooled = features.mean(dim=(2, 3)) if pooling == "gap" else camfix.tap(features, THETA_TAP, flatten=True)
        active = peak > 0
        x, y = areas[active].numpy(), (pooled[active] / peak[active]).numpy()
        numbers[f"{pooling}_pooled_area_spearman"] = spearman(x, y)
        shown = rng.choice(len(x), size=min(4000, len(x)), replace=False)
        name = "GAP" if pooling == "gap" else f"TAP (theta {THETA_TAP})"
        pooled_axis.scatter(x[shown], y[shown], s=2, alpha=0.25, color=color, rasterized=True)
        pooled_axis.plot(*binned_median(x, y, bins), color=color, linewidth=2,
                         label=f"{name}: Spearman {numbers[f'{pooling}_pooled_area_spearman']:+.2f}")

        weight = model.get_classifier().weight.detach()
        channel_areas = class_channel_areas(areas, labels, weight.shape[0])
        positive = weight > 0
        wx, wy = channel_areas[positive].numpy(), weight[positive].numpy()
        numbers[f"{pooling}_weight_area_spearman"] = spearman(wx, wy)
        numbers[f"{pooling}_weighted_mean_area"] = float((wx * wy).sum() / wy.sum())
        weight_axis.scatter(wx, wy, s=3, alpha=0.3, color=color, rasterized=True)
        weight_axis.plot(*binned_median(wx, wy, bins), color=color, linewidth=2,
                         label=f"{name} model: Spearman {numbers[f'{pooling}_weight_area_spearman']:+.2f}")
    pooled_axis.set_xlabel("activation area of the channel (fraction of positions > 0.05 max)")
    pooled_axis.set_ylabel("pooled value / channel maximum")
    pooled_axis.set_title("(a) what the pooling reports, per image and channel", fontsize=9)
    pooled_axis.legend(fontsize=8, loc="lower right")
    weight_axis.set_xlabel("mean activation area of the channel on the class's images")
    weight_axis.set_ylabel("positive classifier weight w[k, c]")
    weight_axis.set_title("(b) the classifier weights each model learned", fontsize=9)
    weight_axis.legend(fontsize=8, loc="upper right")
    for axis in (pooled_axis, weight_axis):
        axis.grid(alpha=0.3)
        axis.set_xlim(0, 1)

    for pooling in ("gap", "tap"):
        maps = camfix.class_maps(models[pooling], inputs, labels).maps
        numbers[f"{pooling}_max_box_acc"] = max_box_acc(maps, torch.from_numpy(data.boxes))
    examples = pick_examples(data, EXAMPLES)
    tiles = []
    for pooling in ("gap", "tap"):
        result = camfix.localize(
            models[pooling], inputs[examples], labels[examples], theta_loc=THETA_LOC, pct=PERCENTILE
        )
        ious = matched_ious(result.boxes, torch.from_numpy(data.boxes[examples]))
        numbers[f"{pooling}_examples_mean_iou"] = float(ious.mean())
        tiles.append([
            tile(data.images[i], result.maps[j].numpy(), result.boxes[j].numpy(), data.boxes[i])
            for j, i in enumerate(examples)
        ])
    maps_axis = figure.add_subplot(grid[1, :])
    images = [tile(data.images[i]) for i in examples]
    show_image(maps_axis, image_grid([*images, *tiles[0], *tiles[1]], columns=EXAMPLES, padding=4),
               "(c) rows: image, GAP model's map, TAP model's map (NWC and PaS on; green: box, red: ground truth)")
    figure.tight_layout()
    save_figure(figure, out / "fix-tap.png")
    return numbers


def intersection_over_area(maps: Tensor, masks: Tensor, theta: float) -> np.ndarray:
    """Per map, the fraction of the region ``map > theta * max`` that lies inside the object."""
    region = maps > theta * maps.amax(dim=(1, 2), keepdim=True)
    inside = (region & masks).sum(dim=(1, 2)).double()
    return (inside / region.sum(dim=(1, 2)).clamp_min(1)).numpy()


def weighted_maps(model: nn.Module, inputs: Tensor, labels: Tensor, sign: int) -> Tensor:
    """Min-max normalised image-size maps of the features with positive (``sign=1``) or negative (``-1``)
    weights for each image's class, each feature counted with the magnitude of its weight."""
    with torch.no_grad():
        features = model.forward_features(inputs)
    weight = model.get_classifier().weight.detach()
    part = weight.clamp(min=0) if sign > 0 else (-weight).clamp(min=0)
    raw = camfix.cam(features, part, clamp_negative=False, classes=labels)
    return camfix.normalize_maps(camfix.resize_maps(raw, tuple(inputs.shape[-2:])))


def figure_nwc(models: Dict[str, nn.Module], data: SyntheticWSOL, out: Path) -> Dict[str, float]:
    model = models["gap"]
    inputs, labels = to_model_input(data.images), torch.from_numpy(data.labels)
    masks = torch.from_numpy(data.masks)
    numbers: Dict[str, float] = {}
    figure = new_figure(11.0, 6.6)
    grid = figure.add_gridspec(2, 2, height_ratios=[1.0, 1.15], width_ratios=[1.0, 1.3])
    ioa_axis = figure.add_subplot(grid[0, 0])
    bins = np.linspace(0, 1, 21)
    negative_maps = weighted_maps(model, inputs, labels, -1)
    for sign, name, color in ((1, "positive", GAP_COLOR), (-1, "negative", NEGATIVE_COLOR)):
        maps = weighted_maps(model, inputs, labels, sign)
        ioa = intersection_over_area(maps, masks, THETA_LOC)
        numbers[f"{name}_ioa_mean"] = float(ioa.mean())
        ioa_axis.hist(ioa, bins=bins, alpha=0.55, color=color,
                      label=f"{name}-weight features: mean {ioa.mean():.2f}")
    numbers["object_fraction"] = float(masks.double().mean())
    ioa_axis.axvline(numbers["object_fraction"], color="black", linestyle=":", linewidth=1,
                     label=f"objects' share of the image: {numbers['object_fraction']:.2f}")
    ioa_axis.set_xlabel(f"intersection over area with the object (region > {THETA_LOC} max)")
    ioa_axis.set_ylabel("images")
    ioa_axis.set_title("(a) where each group of features fires (GAP model)", fontsize=9)
    ioa_axis.legend(fontsize=8, loc="upper left")

    boxes = torch.from_numpy(data.boxes)
    results = {}
    for nwc in (False, True):
        results[nwc] = camfix.localize(model, inputs, labels, clamp_negative=nwc, theta_loc=THETA_LOC, pct=PERCENTILE)
        numbers[f"max_box_acc_nwc_{nwc}"] = max_box_acc(results[nwc].maps, boxes)
        numbers[f"mean_iou_nwc_{nwc}"] = float(matched_ious(results[nwc].boxes, boxes).mean())
    bar_axis = figure.add_subplot(grid[0, 1])
    names = ["MaxBoxAcc (%)", f"mean box IoU x 100\n(theta_loc {THETA_LOC}, PaS)"]
    without = [numbers["max_box_acc_nwc_False"], 100 * numbers["mean_iou_nwc_False"]]
    with_nwc = [numbers["max_box_acc_nwc_True"], 100 * numbers["mean_iou_nwc_True"]]
    positions = np.arange(len(names))
    for offset, values, label, color in ((-0.2, without, "CAM", "tab:gray"), (0.2, with_nwc, "CAM + NWC", GAP_COLOR)):
        bars = bar_axis.bar(positions + offset, values, width=0.4, label=label, color=color)
        bar_axis.bar_label(bars, fmt="%.1f", fontsize=8)
    bar_axis.set_xticks(positions, names, fontsize=8)
    bar_axis.set_ylim(0, 100)
    bar_axis.set_title(f"(b) localization of the {len(data)} evaluation images, GAP model", fontsize=9)
    bar_axis.legend(fontsize=8)

    examples = pick_examples(data, EXAMPLES)
    rows = []
    for i in examples:
        rows += [
            tile(data.images[i], truth=data.boxes[i]),
            tile(data.images[i], negative_maps[i].numpy()),
            *[
                tile(data.images[i], results[nwc].maps[i].numpy(), results[nwc].boxes[i].numpy(), data.boxes[i])
                for nwc in (False, True)
            ],
        ]
    maps_axis = figure.add_subplot(grid[1, :])
    show_image(maps_axis, image_grid(rows, columns=8, padding=4),
               "(c) per image: the image, the negative-weight features' map, CAM, CAM + NWC "
               "(green: box, red: ground truth)")
    figure.tight_layout()
    save_figure(figure, out / "fix-nwc.png")
    return numbers


def figure_pas(models: Dict[str, nn.Module], data: SyntheticWSOL, out: Path) -> Dict[str, float]:
    model = models["gap"]
    inputs, labels, boxes = to_model_input(data.images), torch.from_numpy(data.labels), torch.from_numpy(data.boxes)
    maps = camfix.class_maps(model, inputs, labels).maps  # NWC on
    numbers: Dict[str, float] = {}
    by_standard = {}
    for pct in (100.0, PERCENTILE):
        box = camfix.percentile_box(maps, THETA_LOC, pct)
        iou = matched_ious(box, boxes)
        by_standard[pct] = (box, iou)
        numbers[f"gt_known_loc_pct_{pct:g}"] = 100.0 * float((iou >= 0.5).mean())
        numbers[f"mean_iou_pct_{pct:g}"] = float(iou.mean())
    # The image where the percentile helps most (ties: the first), said so in the caption.
    index = int(np.argmax(by_standard[PERCENTILE][1] - by_standard[100.0][1]))
    numbers["example_index"] = index
    saliency = maps[index]
    thresholds = {
        pct: float(camfix.percentile_threshold(saliency[None], THETA_LOC, pct)) for pct in (100.0, PERCENTILE)
    }
    numbers["example_percentile"] = float(camfix.percentile(saliency[None], PERCENTILE))

    figure = new_figure(11.0, 3.4)
    axes = figure.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1.5, 1, 1]})
    image, truth = data.images[index], data.boxes[index]
    show_image(axes[0], tile(image, saliency.numpy(), truth=truth), "(a) the map (NWC on)\nground truth in red")
    values = saliency.flatten().numpy()
    axes[1].hist(values, bins=50, color="tab:gray")
    axes[1].set_yscale("log")
    for pct, color, name in ((100.0, "tab:purple", f"{THETA_LOC} x max"), (PERCENTILE, "tab:green",
                             f"{THETA_LOC} x percentile {PERCENTILE:g}")):
        axes[1].axvline(thresholds[pct], color=color, linewidth=2, label=f"{name} = {thresholds[pct]:.3f}")
    axes[1].set_xlabel("map value")
    axes[1].set_ylabel("pixels")
    axes[1].set_title("(b) the map's values\nand the two thresholds", fontsize=8)
    axes[1].legend(fontsize=7)
    for axis, pct, name in ((axes[2], 100.0, "max"), (axes[3], PERCENTILE, f"percentile {PERCENTILE:g}")):
        mask = (saliency > thresholds[pct]).numpy()
        box, iou = by_standard[pct]
        picture = tile(np.where(mask[..., None], image, image // 4), None, box[index].numpy(), truth)
        caption = f"({'c' if pct == 100.0 else 'd'}) map > {THETA_LOC} x {name}\nbox IoU {iou[index]:.2f}"
        show_image(axis, picture, caption)
    figure.tight_layout()
    save_figure(figure, out / "fix-pas.png")
    return numbers


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=3200)
    parser.add_argument("--eval-images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = DemoConfig(train_images=args.train_images, eval_images=args.eval_images, epochs=args.epochs,
                        theta_tap=THETA_TAP)
    train = make_dataset(config.train_images, args.seed, "train", config.image_size)
    evaluation = make_dataset(config.eval_images, args.seed, "eval", config.image_size)
    models = train_models(train, config, args.seed)
    for pooling, model in models.items():
        accuracy = 100.0 * float(np.mean(predict(model, evaluation) == evaluation.labels))
        print(f"{pooling.upper()} classifier: top-1 accuracy {accuracy:.1f}% on {len(evaluation)} evaluation images")
    for make in (figure_tap, figure_nwc, figure_pas):
        for name, value in make(models, evaluation, args.out).items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{make.__name__}: {name} = {shown}")
    print(f"wrote fix-tap.png, fix-nwc.png, fix-pas.png to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
