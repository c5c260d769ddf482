"""examples/imagenet end to end on tiny generated data: training (one process and torchrun/gloo), exact resume,
the evaluations (one process == two ranks), bad input, and the shared helpers against references."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "imagenet"
sys.path.insert(0, str(EXAMPLE))

import common  # noqa: E402  (examples/imagenet/common.py)
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
    """A tiny ImageNet: ``train/<wnid>/*.JPEG`` (3 classes x 4 images of random sizes)."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for index in range(IMAGES_PER_CLASS):
            height, width = (int(v) for v in rng.integers(36, 72, 2))
            _write_image(root / "train" / name / f"{name}_{index}.JPEG", rng, height, width)
    return root


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


def test_resume_refuses_another_run(data: Path, trained: Path, tmp_path: Path) -> None:
    message = run_fails("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "3",
                        "--resume", str(trained / "last.pth"), *TINY)
    assert "different run" in message and "epochs: checkpoint 2, command line 3" in message
    message = run_fails("train.py", "--train-dir", str(data / "train"), "--out", str(tmp_path), "--epochs", "2",
                        "--resume", str(trained / "last.pth"), *TINY, "--arch", "resnet50")
    assert "arch: checkpoint 'seresnet_small', command line 'resnet50'" in message


def test_train_missing_data_folder(tmp_path: Path) -> None:
    message = run_fails("train.py", "--train-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), *TINY)
    assert "must be an existing folder" in message and "missing" in message
    assert not (tmp_path / "out" / "last.pth").exists()


def test_pretrained_timm_and_torchvision(data: Path, tmp_path: Path) -> None:
    """A timm-layout checkpoint of another class count loads except fc; one without SE keys needs
    --pretrained-format torchvision, which loads the trunk and reports the SE keys."""
    from camfix.models import seresnet_small

    source = seresnet_small(num_classes=7)
    torch.save(source.state_dict(), tmp_path / "timm.pth")
    model = common.build_model("seresnet_small", 3, "tap", 0.05)
    assert train.load_pretrained(model, tmp_path / "timm.pth", "timm", "seresnet_small") == ["fc.weight", "fc.bias"]
    assert torch.equal(model.state_dict()["layer4.0.se.fc1.weight"], source.state_dict()["layer4.0.se.fc1.weight"])

    trunk = {key: value for key, value in source.state_dict().items() if ".se." not in key}
    torch.save(trunk, tmp_path / "torchvision.pth")
    with pytest.raises(common.InputError, match="pass --pretrained-format torchvision"):
        train.load_pretrained(common.build_model("seresnet_small", 3, "tap", 0.05), tmp_path / "torchvision.pth", "timm", "seresnet_small")
    model = common.build_model("seresnet_small", 3, "tap", 0.05)
    missing = train.load_pretrained(model, tmp_path / "torchvision.pth", "torchvision", "seresnet_small")
    assert missing and all(".se." in key or key.startswith("fc.") for key in missing)
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], trunk["layer1.0.conv1.weight"])


# ------------------------------------------------------------------------------------------ shared helpers


def test_image_folder_matches_torchvision_rules(tmp_path: Path) -> None:
    """Classes are the sorted sub-folders; files are walked recursively, sorted, filtered by extension
    (case-insensitive), exactly what torchvision's ImageFolder lists."""
    for name in ("b/2.png", "b/1.JPEG", "b/sub/0.jpg", "a/x.webp", "a/notes.txt", "c/z.PPM"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "stray.jpg").write_bytes(b"")  # a file at the root is no class
    samples, classes = common.image_folder_samples(tmp_path)
    assert classes == ["a", "b", "c"]
    assert [(str(path.relative_to(tmp_path)), label) for path, label in samples] == [
        ("a/x.webp", 0), ("b/1.JPEG", 1), ("b/2.png", 1), ("b/sub/0.jpg", 1), ("c/z.PPM", 2),
    ]
    (tmp_path / "d").mkdir()
    with pytest.raises(common.InputError, match=r"no image in the class folders \['d'\]"):
        common.image_folder_samples(tmp_path)


def test_train_augmentation_is_a_function_of_seed_epoch_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    dataset = common.TrainImages([(tmp_path / "a.png", 0)], resize=30, crop=20, resize_mode="shorter", seed=3)
    resized = common.resize_image(image, 30, "shorter")
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
    batch = common.normalize_batch(images, channels_last=True)
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
            shards = [common.shard_indices(size, rank, world) for rank in range(world)]
            assert sorted(i for shard in shards for i in shard) == list(range(size))


def test_save_atomic_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pth"
    common.save_atomic({"epoch": 1}, path)

    def broken_save(obj: object, stream: object) -> None:
        stream.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        common.save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_help() -> None:
    for script in ("train.py",):
        assert "torchrun" in run_ok(script, "--help").stdout
