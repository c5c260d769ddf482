"""Metadata readers on the real wsolevaluation files, error reporting, mask loading and ``camfix evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from camfix.cli import main
from camfix.metrics import BoxAccuracy, PeakIoU, PxAP, cam_thresholds, load_mask, read_metadata, resize_boxes

# CI checks the repository out beside the shared folder: <parent>/shared/wsol-metadata.
METADATA = Path(__file__).resolve().parents[1].parent / "shared" / "wsol-metadata"
needs_metadata = pytest.mark.skipif(not METADATA.is_dir(), reason=f"{METADATA} is not present")


@needs_metadata
def test_real_box_metadata() -> None:
    # First entries as in the reference's own evaluation_test.py (test split).
    ilsvrc = read_metadata(METADATA / "ILSVRC" / "test")
    assert ilsvrc.kind == "boxes"
    assert len(ilsvrc.image_ids) == 50000
    first = ilsvrc.image_ids[:3]
    assert [ilsvrc.boxes[i].tolist() for i in first] == [
        [[111, 108, 441, 193]],
        [[45, 49, 499, 162], [2, 69, 437, 207]],
        [[38, 19, 385, 373]],
    ]
    assert [ilsvrc.image_sizes[i] for i in first] == [(500, 375)] * 3
    assert ilsvrc.class_labels[first[0]] == 65
    cub = read_metadata(METADATA / "CUB" / "test")
    assert len(cub.image_ids) == 5794
    assert [cub.boxes[i].tolist() for i in cub.image_ids[:3]] == [
        [[60, 27, 385, 331]],
        [[14, 112, 402, 298]],
        [[33, 53, 284, 448]],
    ]
    assert [cub.image_sizes[i] for i in cub.image_ids[:3]] == [(500, 335), (500, 347), (500, 470)]
    # Inclusive boxes: some reach the last column or row of their image, none beyond (checked on reading).
    assert any(box[2] == cub.image_sizes[i][0] - 1 for i in cub.image_ids for box in cub.boxes[i])


@needs_metadata
def test_real_mask_metadata() -> None:
    openimages = read_metadata(METADATA / "OpenImages" / "test")
    assert openimages.kind == "masks"
    assert len(openimages.image_ids) == 5000
    first = openimages.image_ids[0]
    assert openimages.mask_paths[first] == (
        "test/01226z/7af766bd43da900b_m01226z_6554d965.png",
        "test/01226z/7af766bd43da900b_m01226z_8856c605.png",
    )
    assert openimages.ignore_paths[first] == "test/01226z/7af766bd43da900b_ignore.png"
    assert openimages.image_sizes == {} and openimages.boxes == {}


def write_split(folder: Path, lines: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in lines.items():
        (folder / f"{name}.txt").write_text(content)
    return folder


GOOD = {
    "image_ids": "a.jpg\nb.jpg\n",
    "class_labels": "a.jpg,1\nb.jpg,0\n",
    "image_sizes": "a.jpg,20,10\nb.jpg,20,10\n",
    "localization": "a.jpg,1,1,5,5\nb.jpg,0,0,19,9\nb.jpg,3,3,4,4",
}


def test_reading_errors_name_the_file_and_line(tmp_path: Path) -> None:
    metadata = read_metadata(write_split(tmp_path / "good", GOOD))
    assert metadata.boxes["b.jpg"].tolist() == [[0, 0, 19, 9], [3, 3, 4, 4]]  # no trailing newline needed
    cases = {
        "localization": ("a.jpg,1,1,5\n", r"localization.txt:1: expected 3 or 5 comma-separated fields"),
        "class_labels": ("a.jpg,one\nb.jpg,0\n", r"class_labels.txt:1: expected integers, got 'one'"),
        "image_sizes": ("a.jpg,20,10\n", r"image_sizes.txt has no image size for 1 image\(s\).*'b.jpg'"),
        "image_ids": ("a.jpg\na.jpg\n", "lists an image id twice"),
    }
    for index, (name, (content, message)) in enumerate(cases.items()):
        folder = write_split(tmp_path / f"bad{index}", {**GOOD, name: content})
        with pytest.raises(ValueError, match=message):
            read_metadata(folder)
    outside = write_split(tmp_path / "outside", {**GOOD, "localization": "a.jpg,1,1,20,5\nb.jpg,0,0,1,1\n"})
    with pytest.raises(ValueError, match=r"image 'a.jpg' of size \(20, 10\) .* has a box outside it"):
        read_metadata(outside)
    reversed_box = write_split(tmp_path / "reversed", {**GOOD, "localization": "a.jpg,5,1,1,5\nb.jpg,0,0,1,1\n"})
    with pytest.raises(ValueError, match="x1 < x0"):
        read_metadata(reversed_box)
    no_box = write_split(tmp_path / "nobox", {**GOOD, "localization": "a.jpg,1,1,5,5\n"})
    with pytest.raises(ValueError, match=r"no localization line for 1 image\(s\).*'b.jpg'"):
        read_metadata(no_box)
    with pytest.raises(FileNotFoundError, match="metadata split folder.*missing"):
        read_metadata(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="image_ids.txt does not exist"):
        read_metadata(tmp_path / "empty")


def test_load_mask_unions_instances_and_removes_them_from_ignore(tmp_path: Path) -> None:
    first = np.zeros((8, 8), dtype=np.uint8)
    first[0:4, 0:4] = 255
    second = np.zeros((8, 8), dtype=np.uint8)
    second[4:8, 4:8] = 255
    ignore = np.zeros((8, 8), dtype=np.uint8)
    ignore[0:6, 0:8] = 255
    for name, image in (("m1.png", first), ("m2.png", second), ("ig.png", ignore)):
        cv2.imwrite(str(tmp_path / name), image)
    foreground, ignored = load_mask(tmp_path, ("m1.png", "m2.png"), "ig.png", (4, 4))  # nearest, halved
    assert foreground.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert ignored.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert not load_mask(tmp_path, ("m1.png",), "", (8, 8))[1].any()
    with pytest.raises(FileNotFoundError, match="nothere.png does not exist"):
        load_mask(tmp_path, ("nothere.png",), "", (8, 8))


def make_box_dataset(root: Path, count: int = 5):
    rng = np.random.default_rng(0)
    ids = [f"val/img{i}.JPEG" for i in range(count)]
    boxes = {i: [(10, 20, 300 + 10 * k, 200)] for k, i in enumerate(ids)}
    write_split(
        root / "meta",
        {
            "image_ids": "".join(f"{i}\n" for i in ids),
            "class_labels": "".join(f"{i},{k % 2}\n" for k, i in enumerate(ids)),
            "image_sizes": "".join(f"{i},400,300\n" for i in ids),
            "localization": "".join(f"{i},{b[0]},{b[1]},{b[2]},{b[3]}\n" for i in ids for b in boxes[i]),
        },
    )
    maps = []
    for i in ids:
        score = np.zeros((32, 32))
        score[4:28, 2:25] = rng.random((24, 23))
        score /= score.max()
        (root / "maps" / i).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / "maps" / f"{i}.npy", score)
        maps.append(score)
    (root / "pred.txt").write_text("".join(f"{i},0\n" for i in ids))
    return ids, boxes, np.stack(maps)


def test_evaluate_box_dataset_end_to_end(tmp_path: Path, capsys) -> None:
    ids, boxes, maps = make_box_dataset(tmp_path)
    out = tmp_path / "result.json"
    argv = ["evaluate", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta"), "--no-progress",
            "--predictions", str(tmp_path / "pred.txt"), "--json", str(out), "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    metric = BoxAccuracy(cam_thresholds(0.01))
    gt = [torch.tensor(resize_boxes(np.array(boxes[i]), (400, 300), (32, 32))) for i in ids]
    metric.update(torch.tensor(maps), gt, torch.zeros(5, dtype=torch.long), torch.arange(5) % 2)
    expected = metric.compute()
    assert results["max_box_acc"] == expected.max_box_acc
    assert results["max_box_acc_v2"] == expected.max_box_acc_v2
    assert results["top1_loc"] == expected.top1_loc
    assert "max_box_acc_v2" in printed and "top1_loc" in printed


def test_evaluate_mask_dataset_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = ["test/a.jpg", "test/b.jpg"]
    (tmp_path / "masks" / "test").mkdir(parents=True)
    (tmp_path / "maps" / "test").mkdir(parents=True)
    lines, maps, masks, ignores = [], [], [], []
    for i in ids:
        mask = (rng.random((16, 16)) < 0.3).astype(np.uint8) * 255
        ignore = (rng.random((16, 16)) < 0.2).astype(np.uint8) * 255
        cv2.imwrite(str(tmp_path / "masks" / f"{i}_m.png"), mask)
        cv2.imwrite(str(tmp_path / "masks" / f"{i}_ignore.png"), ignore)
        lines.append(f"{i},{i}_m.png,{i}_ignore.png\n")
        score = rng.random((16, 16))
        np.save(tmp_path / "maps" / f"{i}.npy", score)
        maps.append(score)
        masks.append(mask > 0)
        ignores.append((ignore > 0) & ~(mask > 0))
    write_split(
        tmp_path / "meta",
        {"image_ids": "".join(f"{i}\n" for i in ids), "class_labels": "".join(f"{i},0\n" for i in ids),
         "localization": "".join(lines)},  # fmt: skip
    )
    out = tmp_path / "result.json"
    base = ["evaluate", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta"), "--no-progress"]
    assert main(base + ["--mask-root", str(tmp_path / "masks"), "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    expected_pxap, expected_peak = PxAP(), PeakIoU()
    for metric in (expected_pxap, expected_peak):
        metric.update(torch.tensor(np.stack(maps)), torch.tensor(np.stack(masks)), torch.tensor(np.stack(ignores)))
    assert results["pxap"] == expected_pxap.compute().pxap
    assert results["peak_iou"] == expected_peak.compute().peak
    assert main(base) == 2  # masks need --mask-root


def test_evaluate_reports_bad_inputs_in_one_line(tmp_path: Path, capsys) -> None:
    make_box_dataset(tmp_path)
    (tmp_path / "maps" / "val" / "img3.JPEG.npy").unlink()
    argv = ["evaluate", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta"), "--no-progress"]
    assert main(argv) == 2
    assert "score map" in capsys.readouterr().err
    np.save(tmp_path / "maps" / "val" / "img3.JPEG.npy", np.full((32, 32), 2.0))
    assert main(argv) == 2
    assert "img3.JPEG.npy must have values in [0, 1]" in capsys.readouterr().err
