"""camfix demo: the synthetic benchmark, training helpers, the ablation rows and the `camfix demo --quick` run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import camfix
from camfix.cli import main
from camfix.demo.ablation import (
    ALL_ROWS,
    CRF_THRESHOLDS,
    NO_CRF_ROWS,
    PAPER_PEAK_IOU,
    ROWS,
    crf_params_for,
    evaluate_rows,
)
from camfix.demo.data import CLASS_NAMES, CLASSES, FAMILIES, make_dataset, render_sample
from camfix.demo.pipeline import CRF_SKIPPED, QUICK, DemoConfig, build_classifier
from camfix.demo.plots import (
    MASK_COLOR,
    TILE_SCALE,
    _enlarge_boxes,
    mask_tile,
    new_figure,
    pick_examples,
    save_figure,
    show_image,
    tile,
)
from camfix.demo.train import _learning_rate, deterministic, predict, to_model_input, train_classifier
from camfix.metrics import PeakIoU


@pytest.fixture(autouse=True)
def _skip_without_pydensecrf(request: pytest.FixtureRequest) -> None:
    # Four of the five rows refine their maps with the dense CRF (the optional crf extra).
    if request.node.get_closest_marker("crf") is not None:
        pytest.importorskip("pydensecrf.densecrf")


# ---------------------------------------------------------------------------------------------------------------
# The synthetic benchmark
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_split():
    return make_dataset(64, seed=3, split="eval")


def test_dataset_shapes_and_balance(small_split) -> None:
    data = small_split
    assert len(data) == 64
    assert data.images.shape == (64, 64, 64, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == data.part_masks.shape == (64, 64, 64) and data.masks.dtype == bool
    assert data.boxes.shape == (64, 4) and data.boxes.dtype == np.int64
    assert data.labels.dtype == np.int64
    assert np.bincount(data.labels, minlength=8).tolist() == [8] * 8


def test_boxes_are_the_inclusive_extent_of_the_masks(small_split) -> None:
    for mask, box in zip(small_split.masks, small_split.boxes):
        rows = [y for y in range(mask.shape[0]) if any(mask[y])]
        cols = [x for x in range(mask.shape[1]) if any(mask[:, x])]
        assert box.tolist() == [min(cols), min(rows), max(cols), max(rows)]


def test_head_is_a_small_part_of_the_object(small_split) -> None:
    data = small_split
    assert not (data.part_masks & ~data.masks).any()
    head_fraction = data.part_masks.sum((1, 2)) / data.masks.sum((1, 2))
    assert 0.03 < head_fraction.min() and head_fraction.max() < 0.3
    assert 0.08 < float(np.median(head_fraction)) < 0.16
    area = data.masks.mean((1, 2))
    assert area.min() < 0.07 and area.max() > 0.2  # a spread of sizes


def test_class_table_shares_bodies_and_names_heads() -> None:
    assert len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 8
    heads = [head for _, head in CLASSES]
    assert len(set(heads)) == 8  # the head alone decides the class
    for family in range(len(FAMILIES)):
        assert sum(f == family for f, _ in CLASSES) == 4  # each body is shared by four classes


def test_dataset_is_a_function_of_the_seed() -> None:
    a = make_dataset(16, seed=5)
    b = make_dataset(16, seed=5)
    c = make_dataset(16, seed=6)
    evaluation = make_dataset(16, seed=5, split="eval")
    held_out = make_dataset(16, seed=5, split="val")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)
    # The three splits share no image: operating points chosen on "val" never see the evaluation images.
    for one, other in ((a, evaluation), (a, held_out), (held_out, evaluation)):
        assert not any(np.array_equal(x, y) for x in one.images for y in other.images)
    image, mask, part = render_sample(np.random.default_rng(9), 2, 48)
    again = render_sample(np.random.default_rng(9), 2, 48)
    assert image.shape == (48, 48, 3) and np.array_equal(image, again[0]) and np.array_equal(mask, again[1])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: make_dataset(7, 0), ValueError, "num_images"),
        (lambda: make_dataset(8, -1), ValueError, "seed"),
        (lambda: make_dataset(8, 0, split="test"), ValueError, "split"),
        (lambda: make_dataset(8, 0, image_size=16), ValueError, "image_size"),
        (lambda: render_sample(np.random.default_rng(0), 8), ValueError, "label"),
        (lambda: render_sample(np.random.default_rng(0), 1.0), TypeError, "label"),
    ],
)
def test_dataset_validation(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------------------------------------
# Training helpers
# ---------------------------------------------------------------------------------------------------------------


def test_to_model_input_matches_definition() -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    x = to_model_input(images)
    assert x.shape == (2, 3, 3, 4) and x.dtype == torch.float32
    for n in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(4):
                    expected = (images[n, i, j, c] / 255.0 - camfix.IMAGENET_MEAN[c]) / camfix.IMAGENET_STD[c]
                    assert math.isclose(float(x[n, c, i, j]), expected, rel_tol=1e-5, abs_tol=1e-6)


def test_learning_rate_schedule() -> None:
    total, warmup, peak = 100, 10, 0.1
    rates = [_learning_rate(step, total, warmup, peak) for step in range(total)]
    assert math.isclose(rates[0], peak / warmup) and math.isclose(rates[warmup - 1], peak)
    assert math.isclose(rates[warmup], peak)  # the cosine starts at the peak
    for step in range(warmup, total):
        expected = 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert math.isclose(rates[step], expected)
    assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1 :]))


def test_training_is_deterministic_and_restores_settings() -> None:
    data = make_dataset(16, seed=1)
    config = DemoConfig(train_images=16, eval_images=8, epochs=1)
    import torch.utils.deterministic

    before = torch.are_deterministic_algorithms_enabled()
    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    states, losses = [], []
    for progress in (False, True):  # the progress bar must not change the training (it once drove the schedule)
        with deterministic(4):
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.utils.deterministic.fill_uninitialized_memory is False
            model = build_classifier("tap", config)
            losses.append(train_classifier(model, data, epochs=2, seed=4, batch_size=8, progress=progress))
        states.append(model.state_dict())
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.utils.deterministic.fill_uninitialized_memory == fill_before
    assert losses[0] == losses[1] and len(losses[0]) == 2 and all(math.isfinite(v) for v in losses[0])
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    predictions = predict(model, data)
    assert predictions.shape == (16,) and predictions.dtype == np.int64


def test_build_classifier_pooling() -> None:
    assert isinstance(build_classifier("tap", QUICK).global_pool, camfix.TAPool)
    assert build_classifier("gap", QUICK).global_pool.pool_type == "avg"
    with pytest.raises(ValueError, match="pooling"):
        build_classifier("gem", QUICK)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(build_classifier("gap", QUICK), make_dataset(8, 0), epochs=0, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# Ablation rows
# ---------------------------------------------------------------------------------------------------------------


def test_crf_params_scale_with_the_image() -> None:
    params = crf_params_for(336)
    assert params.gaussian_sxy == 3.0 and params.bilateral_sxy == 80.0
    small = crf_params_for(64)
    assert math.isclose(small.bilateral_sxy, 80.0 * 64 / 336) and math.isclose(small.gaussian_sxy, 3.0 * 64 / 336)
    assert small.bilateral_srgb == params.bilateral_srgb and small.iterations == params.iterations


def test_rows_follow_table_1() -> None:
    assert [row.name for row in ROWS] == list(PAPER_PEAK_IOU)
    assert [(row.crf, row.pas, row.nwc, row.classifier) for row in ROWS] == [
        (False, False, False, "gap"),
        (True, False, False, "gap"),
        (True, True, False, "gap"),
        (True, True, True, "gap"),
        (True, True, True, "tap"),
    ]


@pytest.fixture(scope="module")
def untrained_rows():
    data = make_dataset(16, seed=2, split="eval")
    held_out = make_dataset(16, seed=2, split="val")
    config = DemoConfig(train_images=16, eval_images=16, epochs=1)
    with deterministic(0):
        classifiers = {pooling: build_classifier(pooling, config).eval() for pooling in ("gap", "tap")}
    return classifiers, data, held_out


@pytest.mark.crf
def test_evaluate_rows_on_untrained_models(untrained_rows) -> None:
    classifiers, data, held_out = untrained_rows
    results = evaluate_rows(classifiers, data, held_out, crf_workers=1, progress=False)
    assert [r.row for r in results] == list(ALL_ROWS)
    for result in results:
        for name, value in result.scores().items():
            if value is None:
                assert result.row.crf and name in ("peak_iou", "peak_threshold", "max_box_acc_v2", "pxap"), name
            else:
                assert 0.0 <= value <= (1.0 if name in ("operating_point", "peak_threshold") else 100.0), name
        assert result.maps.shape == (16, 64, 64) and 0 <= float(result.maps.min()) <= float(result.maps.max()) <= 1
        assert result.masks.dtype == torch.bool and result.boxes.shape == (16, 4) and result.boxes.dtype == torch.int64
        assert torch.equal(result.boxes, camfix.mask_to_box(result.masks))
        # The chosen operating point is the held-out maximum, and the masks are the maps cut there.
        selection = result.selection
        assert selection.chosen == float(selection.candidates[int(np.argmax(selection.iou))])
        assert list(selection.candidates) == sorted(selection.candidates)
        if result.row.crf:
            assert set(CRF_THRESHOLDS) <= set(selection.candidates.tolist())
            assert torch.equal(result.masks, result.maps > 0.5)
            assert result.iou_curve is None and result.peak_iou is None
        else:
            assert torch.equal(result.masks, result.maps > selection.chosen)
            assert result.iou_curve.shape == (256,) and math.isclose(result.peak_iou, float(result.iou_curve.max()))
            assert result.iou <= result.peak_iou + 1e-9  # the sweep picks its threshold on these very images
        # IoU at the operating point, recomputed from the masks.
        truth = torch.from_numpy(data.masks)
        expected = 100.0 * float((result.masks & truth).sum()) / float((result.masks | truth).sum())
        assert math.isclose(result.iou, expected, rel_tol=1e-9, abs_tol=1e-9)
    # The PaS row differs from the +CRF row only by the percentile normalisation before the CRF.
    assert not torch.equal(results[1].maps, results[2].maps)


def test_operating_points_come_from_the_held_out_split(untrained_rows) -> None:
    classifiers, data, held_out = untrained_rows
    rows = (ROWS[0],) + NO_CRF_ROWS
    results = evaluate_rows(classifiers, data, held_out, rows, progress=False)
    swapped = evaluate_rows(classifiers, held_out, data, rows, progress=False)
    for result, other in zip(results, swapped):
        # Chosen on held_out: the peak threshold of the held-out maps, whatever the evaluation split holds.
        metric = PeakIoU()
        metric.update(other.maps, torch.from_numpy(held_out.masks))
        assert result.operating_point == metric.compute().peak_threshold
        assert other.operating_point == result.peak_threshold  # and the other way round
    assert any(r.operating_point != o.operating_point for r, o in zip(results, swapped))


def test_plot_helpers() -> None:
    data = make_dataset(16, seed=0, split="eval")
    picked = pick_examples(data, 4)
    areas = data.masks.sum((1, 2))
    assert len(picked) == 4 and areas[picked[0]] == areas.min() and areas[picked[-1]] == areas.max()
    assert list(areas[picked]) == sorted(areas[picked])
    boxes = np.array([[0, 1, 2, 3], [-1, -1, -1, -1]])
    s = TILE_SCALE
    assert _enlarge_boxes(boxes).tolist() == [[0, s, 3 * s - 1, 4 * s - 1], [-1, -1, -1, -1]]


def test_tile_and_figure_helpers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib (the demo extra)")
    from PIL import Image

    from camfix.viz import GROUND_TRUTH_COLOR, PREDICTED_COLOR

    s = TILE_SCALE
    picture = tile(np.zeros((8, 6, 3), np.uint8), truth=np.array([1, 2, 3, 4]))
    assert picture.shape == (8 * s, 6 * s, 3) and picture.dtype == np.uint8
    # The box's inclusive corners, on the enlarged pixels: (1, 2) starts at (s, 2s), (3, 4) ends at (4s-1, 5s-1).
    assert tuple(picture[2 * s, s]) == GROUND_TRUTH_COLOR and tuple(picture[5 * s - 1, 4 * s - 1]) == GROUND_TRUTH_COLOR
    assert tuple(picture[5 * s, 4 * s]) == (0, 0, 0)
    mask = np.zeros((8, 6), bool)
    mask[2:6, 1:4] = True
    tinted = mask_tile(np.full((8, 6, 3), 100, np.uint8), mask)
    assert tinted.shape == (8 * s, 6 * s, 3)
    assert tuple(tinted[2 * s, s + 2]) == MASK_COLOR  # the mask's outline
    assert tuple(tinted[4 * s, 2 * s]) != MASK_COLOR and tinted[4 * s, 2 * s, 2] > tinted[0, 0, 2]  # tinted inside
    assert tuple(tinted[0, 0]) == (55, 55, 55)  # dimmed outside
    boxed = mask_tile(np.full((8, 6, 3), 100, np.uint8), mask, np.array([1, 2, 3, 5]), np.array([0, 0, 5, 7]))
    assert tuple(boxed[2 * s, s]) == PREDICTED_COLOR and tuple(boxed[0, 0]) == GROUND_TRUTH_COLOR
    figure = new_figure(1.0, 0.5)
    show_image(figure.subplots(), picture, "title")
    path = save_figure(figure, tmp_path / "new" / "picture.png")
    with Image.open(path) as written:
        assert written.size == (100, 50) and written.mode == "P"


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.crf
def test_camfix_demo_quick(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--seed", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert all(f"| {row.name} |" in printed for row in ALL_ROWS)
    assert CRF_SKIPPED not in printed
    for name in ("results.md", "results.json", "overlays.png", "iou_curves.png", "samples.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    record = json.loads((out / "results.json").read_text())
    assert record["seed"] == 1 and record["quick"] is True and record["crf_skipped"] is False
    assert record["config"]["train_images"] == QUICK.train_images
    assert record["config"]["val_images"] == QUICK.val_images
    assert [row["name"] for row in record["rows"]] == [row.name for row in ALL_ROWS]
    for row in record["rows"]:
        for key in ("iou", "box_acc_v2", "top1_loc", "gt_known_loc", "held_out_iou", "soft_pixels"):
            assert 0.0 <= row[key] <= 100.0, (row["name"], key)
        for key in ("peak_iou", "max_box_acc_v2", "pxap"):
            assert (row[key] is None) == row["crf"], (row["name"], key)
        assert 0.0 < row["operating_point"] < 1.0
        curve = row["held_out_curve"]
        assert len(curve["operating_points"]) == len(curve["iou"]) and row["operating_point"] in curve["operating_points"]
        assert row["paper_peak_iou"] == PAPER_PEAK_IOU.get(row["name"])
    for accuracy in record["classifier_top1_accuracy"].values():
        assert 0.0 <= accuracy <= 100.0
    assert record["seconds"]["cpu"] > 0 and record["seconds"]["total"] > 0
    markdown = (out / "results.md").read_text()
    assert "camfix demo --seed 1 --quick" in markdown and "![overlays.png](overlays.png)" in markdown


def test_camfix_demo_without_pydensecrf(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydensecrf missing: the rows without the CRF run, and one line says how to get the others."""
    import camfix.crf
    import camfix.demo.cli
    import camfix.demo.pipeline

    def missing() -> None:
        raise ImportError("No module named 'pydensecrf'")

    monkeypatch.setattr(camfix.crf, "load_pydensecrf", missing)
    monkeypatch.setattr(camfix.demo.pipeline, "load_pydensecrf", missing)
    tiny = DemoConfig(train_images=16, val_images=8, eval_images=8, epochs=1)
    monkeypatch.setattr(camfix.demo.pipeline, "QUICK", tiny)
    monkeypatch.setattr(camfix.demo.cli, "QUICK", tiny)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(CRF_SKIPPED) == 1 and 'pip install "camfix[crf]"' in CRF_SKIPPED
    assert all(f"| {row.name} |" in printed for row in (ROWS[0],) + NO_CRF_ROWS)
    assert not any(f"| {row.name} |" in printed for row in ROWS[1:])
    record = json.loads((out / "results.json").read_text())
    assert record["crf_skipped"] is True
    assert [row["name"] for row in record["rows"]] == [row.name for row in (ROWS[0],) + NO_CRF_ROWS]
    assert CRF_SKIPPED in (out / "results.md").read_text()


def test_camfix_demo_rejects_negative_seed(tmp_path: Path) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path), "--seed", "-1"]) == 2


def test_camfix_demo_refuses_an_unwritable_out_before_training(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out under a file fails in a moment with one error line, not after the classifiers trained."""
    import camfix.demo.cli as demo_cli

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("run_demo ran before --out was checked")

    monkeypatch.setattr(demo_cli, "run_demo", must_not_run)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "results"), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("camfix demo: error: --out")


# ---------------------------------------------------------------------------------------------------------------
# Summary of several runs
# ---------------------------------------------------------------------------------------------------------------


def _fake_run(folder: Path, seed: int, ious) -> Path:
    rows = []
    for row, iou in zip(ALL_ROWS, ious):
        sweep = None if row.crf else 50.0
        rows.append(
            {"name": row.name, "crf": row.crf, "iou": iou, "operating_point": 0.25, "box_acc_v2": 50.0,
             "gt_known_loc": 40.0, "top1_loc": 30.0, "peak_iou": sweep, "max_box_acc_v2": sweep,
             "pxap": None if row.crf else 40.0 + seed, "paper_peak_iou": PAPER_PEAK_IOU.get(row.name)}
        )
    record = {"seed": seed, "config": {"epochs": 8}, "rows": rows, "classifier_top1_accuracy": {"gap": 90.0 + seed}}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(record))
    return folder


def test_summary_every_seed_mean_sample_std_and_steps(tmp_path: Path, capsys) -> None:
    from camfix.demo import summary

    # ALL_ROWS order: Baseline, +CRF, +CRF+PaS, +CRF+PaS+NWC, +CRF+PaS+NWC+TAP, +PaS, +PaS+NWC, +PaS+NWC+TAP.
    ious = [
        [10.0, 20.0, 30.0, 40.0, 50.0, 11.0, 12.0, 13.0],
        [12.0, 20.0, 30.0, 40.0, 50.0, 11.0, 12.0, 13.0],
        [17.0, 15.0, 30.0, 40.0, 50.0, 11.0, 12.0, 13.0],
    ]
    folders = [_fake_run(tmp_path / f"s{seed}", seed, ious[seed]) for seed in range(3)]
    assert summary.main([str(f) for f in folders]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    baseline = next(line for line in lines if line.startswith("| Baseline | 10.0 |"))
    values = [10.0, 12.0, 17.0]
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    assert "| 10.0 | 12.0 | 17.0 |" in baseline and f"{mean:.1f} ± {std:.1f}" in baseline
    assert "10.0 - 17.0" in baseline and "52.54" in baseline
    # The rows without the CRF come first (the primary ablation), then the paper's.
    order = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "seed 0" not in line]
    assert order[:8] == ["Baseline", "+PaS", "+PaS+NWC", "+PaS+NWC+TAP", "+CRF", "+CRF+PaS", "+CRF+PaS+NWC",
                         "+CRF+PaS+NWC+TAP"]
    secondary = next(line for line in lines if line.startswith("| +PaS+NWC |") and "±" in line and "0.250" in line)
    assert "41.0 ± 1.0" in secondary  # PxAP 40, 41, 42
    assert "| +CRF | " in table and any(line.startswith("| +CRF | 0.250 ± 0.000 |") and " - |" in line for line in lines)
    step = next(line for line in lines if line.startswith("| Baseline -> +CRF |"))
    assert "+10.0 | +8.0 | -2.0 |" in step and "2 of 3" in step
    assert "GAP 91.0 ± 1.0%" in table and "seeds 0, 1, 2" in table


def test_summary_rejects_inconsistent_runs(tmp_path: Path) -> None:
    from camfix.demo import summary

    a = _fake_run(tmp_path / "a", 0, [1.0] * 8)
    b = _fake_run(tmp_path / "b", 0, [1.0] * 8)
    assert summary.main([str(a), str(b)]) == 2  # same seed twice
    c = _fake_run(tmp_path / "c", 1, [1.0] * 8)
    record = json.loads((c / "results.json").read_text())
    record["config"]["epochs"] = 2
    (c / "results.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="configuration"):
        summary.load_runs([a, c])
    with pytest.raises(FileNotFoundError, match="results.json"):
        summary.load_runs([tmp_path / "missing"])


# ---------------------------------------------------------------------------------------------------------------
# Map diagnostics
# ---------------------------------------------------------------------------------------------------------------


def test_diagnostics_match_reference() -> None:
    import torch.nn.functional as F

    from camfix.demo.diagnostics import diagnose

    data = make_dataset(16, seed=4, split="eval")
    with deterministic(1):
        model = build_classifier("gap", QUICK).eval()
        torch.nn.init.normal_(model.fc.weight)  # a classifier with weights of both signs
    result = diagnose(model, data, batch_size=5)
    with torch.no_grad():
        features = model.forward_features(to_model_input(data.images)).double()
    weight = model.fc.weight.detach().double()
    n, channels, h, w = features.shape
    radius = 64 // h // 2
    near_head = near_object = 0
    pos_in = pos_all = neg_in = neg_all = 0.0
    for i in range(n):
        k = int(data.labels[i])
        positive = sum(max(float(weight[k, c]), 0.0) * features[i, c] for c in range(channels))
        negative = sum(max(-float(weight[k, c]), 0.0) * features[i, c] for c in range(channels))
        raw = positive - negative
        up = F.interpolate(raw[None, None], size=(64, 64), mode="bicubic", align_corners=False)[0, 0]
        y, x = divmod(int(up.argmax()), 64)
        near = lambda mask: any(  # noqa: E731 - a Euclidean-distance check, written out
            mask[yy, xx] for yy in range(64) for xx in range(64) if (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        )
        near_head += near(data.part_masks[i])
        near_object += near(data.masks[i])
        for part, store in ((positive, "pos"), (negative, "neg")):
            up = F.interpolate(part[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0].numpy()
            inside, total = float(up[data.masks[i]].sum()), float(up.sum())
            if store == "pos":
                pos_in, pos_all = pos_in + inside, pos_all + total
            else:
                neg_in, neg_all = neg_in + inside, neg_all + total
    assert math.isclose(result.peak_near_head, 100.0 * near_head / n)
    assert math.isclose(result.peak_near_object, 100.0 * near_object / n)
    assert math.isclose(result.positive_inside, 100.0 * pos_in / pos_all, rel_tol=1e-4)
    assert math.isclose(result.negative_inside, 100.0 * neg_in / neg_all, rel_tol=1e-4)
    assert math.isclose(result.object_area, 100.0 * data.masks.mean())
    assert math.isclose(result.negative_weights, 100.0 * float((weight < 0).double().mean()))
    assert 0.0 <= result.mean_on_background <= 100.0 and 0.0 <= result.mean_on_head <= 100.0
