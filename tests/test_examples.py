"""The example scripts run end to end on small data generated here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from camfix.models import seresnet_small

ROOT = Path(__file__).resolve().parents[1]


def test_localize_folder_writes_overlays_and_boxes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"a.png": (40, 60), "sub/b.jpg": (64, 48)}
    for name, (height, width) in sizes.items():
        cv2.imwrite(str(images / name), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    model = seresnet_small(num_classes=4)
    state = {f"module.{key}": value for key, value in model.state_dict().items()}  # as DDP saves it
    torch.save({"state_dict": state}, tmp_path / "model.pth")
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable, str(ROOT / "examples" / "localize_folder.py"), "--images", str(images),
            "--checkpoint", str(tmp_path / "model.pth"), "--arch", "seresnet_small", "--num-classes", "4",
            "--tap", "0.05", "--size", "32", "--out", str(out), "--batch-size", "1",
        ],
        check=True,
        capture_output=True,
    )
    records = {r["image"]: r for r in json.loads((out / "boxes.json").read_text())}
    assert set(records) == {"a.png", "sub/b.jpg"}
    for name, (height, width) in sizes.items():
        overlay = cv2.imread(str(out / Path(name).with_suffix(".png")))
        assert overlay.shape == (height, width, 3)
        x0, y0, x1, y1 = records[name]["box"]
        assert 0 <= x0 <= x1 < width and 0 <= y0 <= y1 < height
        assert 0 <= records[name]["class"] < 4 and 0 < records[name]["score"] <= 1


def test_localize_folder_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "localize_folder.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--checkpoint" in result.stdout


def test_examples_import_only_public_modules() -> None:
    """What a script needs is public API (camfix.cli_support, camfix.boxes, ...): no example imports a private
    camfix module such as camfix._validation."""
    private_import = re.compile(r"^\s*(from|import)\s+camfix(\.\w+)*\._\w+", re.MULTILINE)
    scripts = sorted((ROOT / "examples").rglob("*.py"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert "camfix._validation" not in text, script
        assert not private_import.search(text), f"{script}: {private_import.search(text).group(0)}"
