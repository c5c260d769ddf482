from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camfix.models import read_state_dict, seresnet_small


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "ddp", "file"])
def test_read_state_dict_unwraps_and_strips_ddp_prefix(wrap: str, tmp_path: Path) -> None:
    model = seresnet_small(num_classes=3)
    state = model.state_dict()
    checkpoint: object = {
        "plain": state,
        "model": {"model": state, "epoch": 3, "optimizer": {"state": {}}},
        "state_dict": {"state_dict": state},
        "ddp": {f"module.{key}": value for key, value in state.items()},
        "file": tmp_path / "model.pth",
    }[wrap]
    torch.save(state, tmp_path / "model.pth")
    loaded = read_state_dict(checkpoint)  # type: ignore[arg-type]
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[key], state[key]) for key in state)
    seresnet_small(num_classes=3).load_state_dict(loaded, strict=True)


@pytest.mark.parametrize("checkpoint", [[1, 2], {"fc.weight": [1.0]}, {3: torch.zeros(1)}])
def test_read_state_dict_rejects_non_state_dicts(checkpoint: object) -> None:
    with pytest.raises(TypeError, match="checkpoint"):
        read_state_dict(checkpoint)  # type: ignore[arg-type]
