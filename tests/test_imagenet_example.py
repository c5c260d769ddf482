"""examples/imagenet end to end on tiny generated data: training (one process and torchrun/gloo), exact resume,
the evaluations (one process == two ranks), bad input, and the shared helpers against references."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import cv2
import numpy as np
import pytest
import torch

import camfix
from camfix import cli_support

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "imagenet"
sys.path.insert(0, str(EXAMPLE))

import checkpoints  # noqa: E402  (examples/imagenet/checkpoints.py)
import data as recipe_data  # noqa: E402  (examples/imagenet/data.py; the fixture data is the dataset)
import distributed  # noqa: E402
import evaluation  # noqa: E402
import evaluate_lid  # noqa: E402
import evaluate_wsol  # noqa: E402
import evaluate_wsss  # noqa: E402
import train  # noqa: E402  (examples/imagenet/train.py)

pytestmark = pytest.mark.slow

CLASSES = ("n01440764", "n01443537", "n01484850")
IMAGES_PER_CLASS = 4
#: Tiny but complete settings: 48 px resize, 40 px crops, the narrow SE-ResNet, a few steps.
TINY = ("--arch", "seresnet_small", "--resize", "48", "--crop", "40", "--batch-size", "4", "--workers", "0")


def _write_image(path: Path, rng: np.random.Generator, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ImageNet and its evaluation sets, images of random sizes:

    - ``train/<wnid>/*.JPEG``: 3 classes x 4 images;
    - ``val/*.JPEG`` (5 images) with ``val.txt`` (``path class``), object masks ``val_mask/*.png`` (LID Track 3),
      label maps ``val_labels/*.png`` (Track 1: the object has label class + 1, a 255 border row is ignored) and
      ``metadata/`` in the reference evaluator's format (one or two boxes per image).
    """
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for index in range(IMAGES_PER_CLASS):
            height, width = (int(v) for v in rng.integers(36, 72, 2))
            _write_image(root / "train" / name / f"{name}_{index}.JPEG", rng, height, width)
    lines, ids, labels, sizes, boxes = [], [], [], [], []
    for index in range(5):
        height, width = (int(v) for v in rng.integers(36, 72, 2))
        name = f"ILSVRC2012_val_{index:08d}.JPEG"
        _write_image(root / "val" / name, rng, height, width)
        label = index % len(CLASSES)
        x0, y0, x1, y1 = width // 5, height // 4, 3 * width // 4, 4 * height // 5
        mask = np.zeros((height, width), np.uint8)
        mask[y0 : y1 + 1, x0 : x1 + 1] = 255
        _write_mask(root / "val_mask" / Path(name).with_suffix(".png"), mask)
        label_map = np.where(mask > 0, label + 1, 0).astype(np.uint8)
        label_map[0] = 255
        _write_mask(root / "val_labels" / Path(name).with_suffix(".png"), label_map)
        lines.append(f"{name} {label}")
        ids.append(f"val/{name}")
        labels.append(f"val/{name},{label}")
        sizes.append(f"val/{name},{width},{height}")
        boxes.append(f"val/{name},{x0},{y0},{x1},{y1}")
        if index % 2:
            boxes.append(f"val/{name},0,0,{width // 3},{height // 3}")
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    (root / "metadata").mkdir()
    for file_name, records in (("image_ids", ids), ("class_labels", labels), ("image_sizes", sizes), ("localization", boxes)):
        (root / "metadata" / f"{file_name}.txt").write_text("\n".join(records) + "\n")
    return root


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def run_script(script: str, *args: str, ranks: int = 0) -> subprocess.CompletedProcess:
    """Run ``examples/imagenet/<script>`` with this interpreter; with ``ranks``, under torchrun on 127.0.0.1."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command: List[str] = [sys.executable]
    if ranks:
        with socket.socket() as probe:  # a free port for the rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command += ["-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--rdzv_backend=c10d",
                    f"--rdzv_endpoint=127.0.0.1:{port}"]
    command += [str(EXAMPLE / script), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def run_ok(script: str, *args: str, ranks: int = 0) -> subprocess.CompletedProcess:
    result = run_script(script, *args, ranks=ranks)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def run_fails(script: str, *args: str) -> str:
    """Run a script that must reject its input: exit status 2, one clear line, no traceback."""
    result = run_script(script, *args)
    assert result.returncode == 2, f"{script} exited {result.returncode}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def weights(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ------------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short epochs (3 steps each), keeping every epoch's checkpoint; returns the run folder."""
    out = tmp_path_factory.mktemp("run")
    run_ok("train.py", "--train-dir", str(data / "train"), "--out", str(out), "--epochs", "2", "--save-every", "1", *TINY)
    return out


def test_train_writes_checkpoints_and_log(trained: Path) -> None:
    checkpoint = torch.load(trained / "last.pth", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["arch"] == "seresnet_small" and checkpoint["pool"] == "tap"
    assert checkpoint["theta_tap"] == 0.05 and checkpoint["num_classes"] == len(CLASSES)
    assert checkpoint["classes"] == list(CLASSES)
    assert {"optimizer", "scheduler", "scaler", "rng"} <= set(checkpoint)
    assert (trained / "epoch_0001.pth").is_file() and (trained / "epoch_0002.pth").is_file()
    assert not list(trained.glob("*.tmp")), "a temporary checkpoint was left behind"
    log = (trained / "train.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log


def test_resume_is_exact(data: Path, trained: Path, tmp_path: Path) -> None:
    """Epoch 2 resumed from epoch 1's checkpoint (with DataLoader workers this time) gives bit-identical weights."""
    run_ok("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "2",
           "--save-every", "1", "--resume", str(trained / "epoch_0001.pth"), *TINY, "--workers", "2")
    resumed, uninterrupted = weights(tmp_path / "last.pth"), weights(trained / "last.pth")
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    assert not (tmp_path / "epoch_0001.pth").exists()


def test_resume_auto_finishes_a_finished_run(data: Path, trained: Path, tmp_path: Path) -> None:
    """``--resume auto`` on a run that already did all its epochs trains nothing and keeps the weights."""
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "last.pth").write_bytes((trained / "last.pth").read_bytes())
    run_ok("train.py", "--train-dir", str(data / "train"), "--out", str(copy), "--epochs", "2", "--resume", "auto", *TINY)
    assert all(torch.equal(a, b) for a, b in zip(weights(copy / "last.pth").values(), weights(trained / "last.pth").values()))


def test_train_under_torchrun_gloo(data: Path, tmp_path: Path) -> None:
    """Real DDP: two CPU ranks with the gloo backend, launched by torchrun."""
    result = run_ok("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "1",
                    *TINY, "--batch-size", "2", ranks=2)
    checkpoint = torch.load(tmp_path / "last.pth", map_location="cpu", weights_only=True)
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2 and checkpoint["epoch"] == 1
    assert "2 process(es)" in result.stderr
    assert "[rank 1] INFO" not in result.stderr, "only rank 0 logs"


def test_resume_refuses_another_run(data: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = run_fails("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "3",
                        "--resume", str(trained / "last.pth"), *TINY)
    assert "different run" in message and "epochs: checkpoint 2, command line 3" in message
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; refused before any process group is joined
    with pytest.raises(cli_support.InputError, match="processes: checkpoint 1, command line 2"):
        train.main(["--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "2",
                    "--resume", str(trained / "last.pth"), *TINY])
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(cli_support.InputError, match="arch: checkpoint 'seresnet_small', command line 'resnet50'"):
        train.main(["--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "2",
                    "--resume", str(trained / "last.pth"), *TINY, "--arch", "resnet50"])
    assert not (tmp_path / "last.pth").exists()


def test_train_missing_data_folder(tmp_path: Path) -> None:
    message = run_fails("train.py", "--train-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), *TINY)
    assert "--train-dir must be an existing folder" in message and "missing" in message
    assert not (tmp_path / "out" / "last.pth").exists()


def test_pretrained_timm_and_torchvision(data: Path, tmp_path: Path) -> None:
    """A timm-layout checkpoint of another class count loads except fc; one without SE keys needs
    --pretrained-format torchvision, which loads the trunk and reports the SE keys."""
    from camfix.models import seresnet_small

    source = seresnet_small(num_classes=7)
    torch.save(source.state_dict(), tmp_path / "timm.pth")
    model = checkpoints.build_model("seresnet_small", 3, "tap", 0.05)
    assert train.load_pretrained(model, tmp_path / "timm.pth", "timm", "seresnet_small") == ["fc.weight", "fc.bias"]
    assert torch.equal(model.state_dict()["layer4.0.se.fc1.weight"], source.state_dict()["layer4.0.se.fc1.weight"])

    trunk = {key: value for key, value in source.state_dict().items() if ".se." not in key}
    torch.save(trunk, tmp_path / "torchvision.pth")
    with pytest.raises(cli_support.InputError, match="pass --pretrained-format torchvision"):
        train.load_pretrained(checkpoints.build_model("seresnet_small", 3, "tap", 0.05), tmp_path / "torchvision.pth", "timm", "seresnet_small")
    model = checkpoints.build_model("seresnet_small", 3, "tap", 0.05)
    missing = train.load_pretrained(model, tmp_path / "torchvision.pth", "torchvision", "seresnet_small")
    assert missing and all(".se." in key or key.startswith("fc.") for key in missing)
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], trunk["layer1.0.conv1.weight"])

    # Fine-tuning from it, end to end: the log names the keys that keep their initialisation.
    run_ok("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path / "run"), "--epochs", "1",
           "--pretrained", str(tmp_path / "torchvision.pth"), "--pretrained-format", "torchvision", *TINY)
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"{len(missing)} key(s) keep their initialisation: layer1.0.se.fc1.weight" in log


# ------------------------------------------------------------------------------------------ shared helpers


def test_image_folder_matches_torchvision_rules(tmp_path: Path) -> None:
    """Classes are the sorted sub-folders; files are walked recursively, sorted, filtered by extension
    (case-insensitive), exactly what torchvision's ImageFolder lists."""
    for name in ("b/2.png", "b/1.JPEG", "b/sub/0.jpg", "a/x.webp", "a/notes.txt", "c/z.PPM"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "stray.jpg").write_bytes(b"")  # a file at the root is no class
    samples, classes = recipe_data.image_folder_samples(tmp_path)
    assert classes == ["a", "b", "c"]
    assert [(str(path.relative_to(tmp_path)), label) for path, label in samples] == [
        ("a/x.webp", 0), ("b/1.JPEG", 1), ("b/2.png", 1), ("b/sub/0.jpg", 1), ("c/z.PPM", 2),
    ]
    (tmp_path / "d").mkdir()
    with pytest.raises(cli_support.InputError, match=r"no image in the class folders \['d'\]"):
        recipe_data.image_folder_samples(tmp_path)


def test_train_augmentation_is_a_function_of_seed_epoch_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    dataset = recipe_data.TrainImages([(tmp_path / "a.png", 0)], resize=30, crop=20, resize_mode="shorter", seed=3)
    resized = recipe_data.resize_image(image, 30, "shorter")
    assert resized.shape == (30, 50, 3)
    crops = [dataset[(epoch, 0)][0].permute(1, 2, 0).numpy() for epoch in range(12)]
    assert np.array_equal(crops[0], dataset[(0, 0)][0].permute(1, 2, 0).numpy())
    windows = {(top, left, flip) for top in range(11) for left in range(31) for flip in (False, True)
               if np.array_equal(crops[0], (resized[top:top + 20, left:left + 20])[:, ::-1] if flip else resized[top:top + 20, left:left + 20])}
    assert windows, "the crop is not a (flipped) window of the resized image"
    assert len({crop.tobytes() for crop in crops}) > 6, "epochs draw different crops"


def test_normalize_batch_against_float64_reference() -> None:
    images = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = torch.empty(2, 3, 5, 4, dtype=torch.float64)
    for n in range(2):
        for c in range(3):
            for y in range(5):
                for x in range(4):
                    reference[n, c, y, x] = (int(images[n, c, y, x]) / 255.0 - mean[c]) / std[c]
    batch = recipe_data.normalize_batch(images, channels_last=True)
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(batch.double(), reference, rtol=0, atol=1e-5)


def test_learning_rate_schedule_against_definition() -> None:
    step = train.LearningRateSchedule("step", total_steps=100, warmup_steps=4, milestones=[30, 60])
    assert [step(s) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert step(29) == 1.0 and step(30) == pytest.approx(0.1) and step(60) == pytest.approx(0.01)
    cosine = train.LearningRateSchedule("cosine", total_steps=104, warmup_steps=4, milestones=[])
    for s in (4, 30, 54, 103):
        assert cosine(s) == pytest.approx(0.5 * (1 + np.cos(np.pi * (s - 4) / 100)))


def test_select_single_class() -> None:
    labels = [[0, 1], [1], [1, 2], [2, 0], [3, 1]]  # images per class: 0: 2, 1: 4, 2: 2, 3: 1
    assert train.select_single_class(labels, "rarest") == [0, 1, 2, 0, 3]
    assert train.select_single_class(labels, "most-frequent") == [1, 1, 1, 0, 1]


def test_shards_partition_the_dataset() -> None:
    for size in (0, 1, 7, 10):
        for world in (1, 2, 3):
            shards = [distributed.shard_indices(size, rank, world) for rank in range(world)]
            assert sorted(i for shard in shards for i in shard) == list(range(size))


def test_save_atomic_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pth"
    checkpoints.save_atomic({"epoch": 1}, path)

    def broken_save(obj: object, stream: object) -> None:
        stream.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_help(capsys: pytest.CaptureFixture) -> None:
    assert "torchrun" in run_ok("train.py", "--help").stdout  # the real command line, once
    for module in (evaluate_lid, evaluate_wsol, evaluate_wsss):
        with pytest.raises(SystemExit) as exit_info:
            module.parse_args(["--help"])
        assert exit_info.value.code == 0 and "torchrun" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- evaluation


def lid_args(data: Path, checkpoint: Path, out: Path) -> List[str]:
    return ["--images", str(data / "val"), "--list", str(data / "val.txt"), "--masks", str(data / "val_mask"),
            "--checkpoint", str(checkpoint), "--out", str(out), "--size", "48", "--batch-size", "2", "--workers", "0"]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def reference_peak_iou_curve(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> np.ndarray:
    """Dataset Peak IoU curve from the definition, in float64 loops: for t = 0..255, foreground = map > t,
    intersections and unions summed over the images, IoU in percent."""
    curve = np.zeros(256)
    for t in range(256):
        intersection = union = 0
        for levels, mask in zip(maps, masks):
            predicted = levels.astype(np.int64) > t
            intersection += int(np.logical_and(predicted, mask).sum())
            union += int(np.logical_or(predicted, mask).sum())
        curve[t] = 100.0 * intersection / union
    return curve


@pytest.fixture(scope="module")
def lid_one_process(data: Path, trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lid1")
    run_ok("evaluate_lid.py", *lid_args(data, trained / "last.pth", out), "--crf", "--crf-workers", "1")
    return out


def test_evaluate_lid_maps_and_peak_iou(data: Path, lid_one_process: Path) -> None:
    """The submission PNGs are 8-bit, one channel, at each image's size; the reported curve and Peak IoU are those
    of these PNGs against the masks, computed here from the definition."""
    metrics = read_json(lid_one_process / "metrics.json")
    maps, masks = [], []
    for line in (data / "val.txt").read_text().split("\n")[:-1]:
        name = Path(line.split()[0]).with_suffix(".png")
        levels = cv2.imread(str(lid_one_process / "maps" / name), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(data / "val" / line.split()[0]))
        assert levels.dtype == np.uint8 and levels.shape == image.shape[:2]
        maps.append(levels)
        masks.append(cv2.imread(str(data / "val_mask" / name), cv2.IMREAD_GRAYSCALE) > 0)
    curve = reference_peak_iou_curve(maps, masks)
    np.testing.assert_allclose(metrics["iou_curve"], curve, rtol=0, atol=1e-9)
    assert metrics["peak_iou"] == pytest.approx(curve.max(), abs=1e-9)
    assert metrics["peak_threshold"] == pytest.approx(int(np.argmax(curve)) / 255)
    assert metrics["num_images"] == 5 and metrics["crf"] and metrics["nwc"] and metrics["pct"] == 98.0
    assert metrics["arch"] == "seresnet_small" and metrics["pool"] == "tap"  # read from the checkpoint
    assert (lid_one_process / "iou_curve.png").is_file()


def test_evaluate_lid_two_ranks_equal_one_process(data: Path, trained: Path, lid_one_process: Path, tmp_path: Path) -> None:
    run_ok("evaluate_lid.py", *lid_args(data, trained / "last.pth", tmp_path), "--crf", "--crf-workers", "1", ranks=2)
    one, two = read_json(lid_one_process / "metrics.json"), read_json(tmp_path / "metrics.json")
    assert one == two
    for png in (lid_one_process / "maps").iterdir():
        assert np.array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), cv2.imread(str(tmp_path / "maps" / png.name), cv2.IMREAD_UNCHANGED))


def wsol_args(data: Path, checkpoint: Path, out: Path) -> List[str]:
    return ["--metadata", str(data / "metadata"), "--images", str(data), "--checkpoint", str(checkpoint),
            "--out", str(out), "--size", "48", "--batch-size", "2", "--workers", "0"]


def test_evaluate_wsol_two_ranks_equal_one_process(data: Path, trained: Path, tmp_path: Path) -> None:
    run_ok("evaluate_wsol.py", *wsol_args(data, trained / "last.pth", tmp_path / "one"))
    run_ok("evaluate_wsol.py", *wsol_args(data, trained / "last.pth", tmp_path / "two"), ranks=2)
    one, two = read_json(tmp_path / "one" / "metrics.json"), read_json(tmp_path / "two" / "metrics.json")
    assert one == two
    assert one["num_images"] == 5 and one["mode"] == "reference"
    assert set(one["max_box_acc_v2_by_iou"]) == {"30", "50", "70"}
    assert one["max_box_acc_v2"] == pytest.approx(np.mean(list(one["max_box_acc_v2_by_iou"].values())))
    assert one["gt_known_loc"] == one["max_box_acc_by_iou"]["50"]
    assert 0 <= one["top1_loc"] <= min(one["gt_known_loc"], one["top1_cls"])
    for value in (one["max_box_acc_v2"], one["top1_cls"]):  # multiples of 100 / 5 images (v2: of their mean)
        assert 0 <= value <= 100


def test_track1_train_on_single_class_and_evaluate_wsss(data: Path, tmp_path: Path) -> None:
    """Track 1: train on one class per image from a multi-label list, segment with the CRF, score by mIoU
    (1 process == 2 ranks); the label PNGs hold only background and the predicted class's label."""
    multi = [f"{line} {(int(line.split()[1]) + 1) % len(CLASSES)}" if i % 2 else line
             for i, line in enumerate((data / "val.txt").read_text().split("\n")[:-1])]
    (tmp_path / "multi.txt").write_text("\n".join(multi) + "\n")
    run_ok("train.py", "--train-list", str(tmp_path / "multi.txt"), "--image-root", str(data / "val"),
           "--out", str(tmp_path / "run"), "--epochs", "1", *TINY)
    common_args = ["--images", str(data / "val"), "--list", str(data / "val.txt"), "--labels", str(data / "val_labels"),
                   "--checkpoint", str(tmp_path / "run" / "last.pth"), "--size", "48", "--batch-size", "2",
                   "--workers", "0", "--crf", "--crf-workers", "1"]
    run_ok("evaluate_wsss.py", *common_args, "--out", str(tmp_path / "one"))
    run_ok("evaluate_wsss.py", *common_args, "--out", str(tmp_path / "two"), ranks=2)
    one, two = read_json(tmp_path / "one" / "metrics.json"), read_json(tmp_path / "two" / "metrics.json")
    assert one == two and len(one["per_class_iou"]) == len(CLASSES) + 1
    for png in (tmp_path / "one" / "segmentations").iterdir():
        labels = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint8 and labels.ndim == 2 and len(set(np.unique(labels)) - {0}) <= 1
        assert labels.max() <= len(CLASSES)


def test_evaluate_missing_masks(data: Path, trained: Path, tmp_path: Path) -> None:
    (tmp_path / "val.txt").write_text((data / "val.txt").read_text() + "")
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "ILSVRC2012_val_00000000.png").write_bytes((data / "val_mask" / "ILSVRC2012_val_00000000.png").read_bytes())
    args = lid_args(data, trained / "last.pth", tmp_path / "out")
    args[args.index("--masks") + 1] = str(masks)
    message = run_fails("evaluate_lid.py", *args)
    assert "4 of 5 ground-truth files are missing" in message and "ILSVRC2012_val_00000001.png" in message
    assert not (tmp_path / "out").exists()


def test_evaluate_list_naming_missing_images(data: Path, trained: Path, tmp_path: Path) -> None:
    (tmp_path / "val.txt").write_text((data / "val.txt").read_text() + "nowhere.JPEG 1\n")
    args = lid_args(data, trained / "last.pth", tmp_path / "out")
    args[args.index("--list") + 1] = str(tmp_path / "val.txt")
    message = run_fails("evaluate_lid.py", *args)
    assert "1 image(s) named in" in message and "nowhere.JPEG" in message


def test_evaluate_checkpoint_of_another_architecture(data: Path, trained: Path, tmp_path: Path) -> None:
    from camfix.models import resnet50

    message = run_fails("evaluate_wsol.py", *wsol_args(data, trained / "last.pth", tmp_path), "--arch", "resnet50")
    assert "--arch 'resnet50' but the checkpoint was trained with 'seresnet_small'" in message
    torch.save(resnet50(num_classes=3).state_dict(), tmp_path / "resnet50.pth")  # a plain state_dict records nothing
    with pytest.raises(cli_support.InputError, match="--arch seresnet_small with 3 classes .*does not fit the model.*missing keys"):
        evaluate_wsol.main([*wsol_args(data, tmp_path / "resnet50.pth", tmp_path), "--arch", "seresnet_small", "--num-classes", "3"])
    (tmp_path / "truncated.pth").write_bytes((trained / "last.pth").read_bytes()[:1000])
    with pytest.raises(cli_support.InputError, match="cannot load the checkpoint"):
        evaluate_wsol.main(wsol_args(data, tmp_path / "truncated.pth", tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_paper_maps_against_float64_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """CAM of the top-1 class with NWC (positive weights only), bicubic to the image size, min-max, then divided by
    the 98th percentile and clipped: recomputed here in float64 from the model's features and classifier. The
    recipe calls camfix's stages, never ``localize`` followed by steps it already did."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the recipe called camfix.localize")

    monkeypatch.setattr(camfix, "localize", refuse)
    model = checkpoints.build_model("seresnet_small", 3, "tap", 0.05).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    maps, classes, logits = evaluation.paper_maps(
        model, images, None, clamp_negative=True, pct=98.0, crf_params=None, crf_workers=None, dtype=None,
        channels_last=False,
    )
    with torch.no_grad():
        inputs = recipe_data.normalize_batch(images)
        features = model.forward_features(inputs).double()
        expected_logits = model(inputs)
    weight = model.fc.weight.detach().double()
    assert torch.equal(classes, expected_logits.argmax(1))
    torch.testing.assert_close(logits, expected_logits)
    for n in range(2):
        k = int(classes[n])
        raw = sum(max(float(weight[k, c]), 0.0) * features[n, c] for c in range(features.shape[1]))
        resized = torch.nn.functional.interpolate(raw[None, None], size=(32, 32), mode="bicubic", align_corners=False)[0, 0]
        normalized = ((resized - resized.min()) / (resized.max() - resized.min())).numpy()
        expected = np.minimum(normalized / np.percentile(normalized, 98), 1.0)
        np.testing.assert_allclose(maps[n].numpy(), expected, rtol=0, atol=1e-4)

    # The autocast path (bf16 forward pass, float32 maps) stays close to the float32 one.
    half, half_classes, _ = evaluation.paper_maps(
        model, images, classes, clamp_negative=True, pct=98.0, crf_params=None, crf_workers=None,
        dtype=torch.bfloat16, channels_last=True,
    )
    assert half.dtype == torch.float32 and torch.equal(half_classes, classes)
    assert float((half - maps).abs().mean()) < 0.05
