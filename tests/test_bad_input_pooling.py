"""Bad input to camfix.pooling: every argument of ``tap`` and ``TAPool`` is checked under its own name before any
pooling, so a wrong call raises ``TypeError`` (wrong kind) or ``ValueError`` (wrong shape or range) and never
returns features pooled some other way than asked (``flatten="no"`` used to flatten)."""

from __future__ import annotations

import math
from typing import Dict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from camfix import TAPool, tap

GOOD = {"x": torch.rand(2, 3, 4, 5), "theta": 0.05, "flatten": False}

#: name -> (argument overrides, expected exception, text the message must contain)
BAD_CALLS: Dict[str, tuple] = {
    "x a list": ({"x": [[1.0]]}, TypeError, "x must be a torch.Tensor"),
    "x a numpy array": ({"x": np.zeros((1, 1, 2, 2))}, TypeError, "x must be a torch.Tensor"),
    "x 3-D": ({"x": torch.zeros(1, 2, 2)}, ValueError, "x must have shape (N, C, H, W)"),
    "x 5-D": ({"x": torch.zeros(1, 1, 1, 2, 2)}, ValueError, "x must have shape (N, C, H, W)"),
    "x int64": ({"x": torch.zeros(1, 1, 2, 2, dtype=torch.int64)}, TypeError, "x must be a floating point"),
    "x bool": ({"x": torch.zeros(1, 1, 2, 2, dtype=torch.bool)}, TypeError, "x must be a floating point"),
    "x complex": ({"x": torch.zeros(1, 1, 2, 2, dtype=torch.complex64)}, TypeError, "x must be a floating point"),
    "x zero height": ({"x": torch.zeros(1, 1, 0, 2)}, ValueError, "x must have a non-empty spatial size"),
    "x zero width": ({"x": torch.zeros(1, 1, 2, 0)}, ValueError, "x must have a non-empty spatial size"),
    "theta NaN": ({"theta": math.nan}, ValueError, "theta must be in [0, 1)"),
    "theta 1": ({"theta": 1.0}, ValueError, "theta must be in [0, 1)"),
    "theta negative": ({"theta": -0.1}, ValueError, "theta must be in [0, 1)"),
    "theta inf": ({"theta": math.inf}, ValueError, "theta must be in [0, 1)"),
    "theta a string": ({"theta": "0.1"}, TypeError, "theta must be a real number"),
    "theta a tensor": ({"theta": torch.tensor(0.1)}, TypeError, "theta must be a real number"),
    "theta a bool": ({"theta": True}, TypeError, "theta must be a real number"),
    "theta None": ({"theta": None}, TypeError, "theta must be a real number"),
    "flatten 'no'": ({"flatten": "no"}, TypeError, "flatten must be a bool"),
    "flatten 'yes'": ({"flatten": "yes"}, TypeError, "flatten must be a bool"),
    "flatten 0": ({"flatten": 0}, TypeError, "flatten must be a bool"),
    "flatten 1": ({"flatten": 1}, TypeError, "flatten must be a bool"),
    "flatten None": ({"flatten": None}, TypeError, "flatten must be a bool"),
    "flatten a tensor": ({"flatten": torch.tensor(True)}, TypeError, "flatten must be a bool"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_tap_names_the_bad_argument(case: str) -> None:
    overrides, error, message = BAD_CALLS[case]
    arguments = {**GOOD, **overrides}
    with pytest.raises(error) as raised:
        tap(arguments["x"], arguments["theta"], arguments["flatten"])
    assert message in str(raised.value) and str(raised.value).startswith(message.split()[0] + " ")


@pytest.mark.parametrize("case", sorted(name for name in BAD_CALLS if not name.startswith("x ")))
def test_tapool_refuses_bad_settings_at_construction(case: str) -> None:
    overrides, error, message = BAD_CALLS[case]
    arguments = {**GOOD, **overrides}
    with pytest.raises(error) as raised:
        TAPool(arguments["theta"], arguments["flatten"])
    assert message in str(raised.value)


def test_tapool_checks_settings_changed_after_construction() -> None:
    pool = TAPool(0.05)
    pool.flatten = "no"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="flatten must be a bool"):
        pool(torch.rand(1, 2, 3, 3))


@given(st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(allow_nan=True), st.lists(st.booleans())))
def test_tap_flatten_must_be_a_real_bool(flatten: object) -> None:
    with pytest.raises(TypeError, match="flatten must be a bool"):
        tap(torch.rand(1, 2, 3, 3), 0.05, flatten)  # type: ignore[arg-type]


@given(st.one_of(st.floats(max_value=-1e-300), st.floats(min_value=1.0), st.just(math.nan)))
def test_tap_theta_outside_its_interval_is_refused(theta: float) -> None:
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\)"):
        tap(torch.rand(1, 2, 3, 3), theta)


def test_good_edge_inputs_are_accepted() -> None:
    # Not bad input: empty batches and channels pool to empty outputs, numpy bools and float64s are bools and floats.
    assert tap(torch.zeros(0, 3, 2, 2)).shape == (0, 3, 1, 1)
    assert tap(torch.zeros(2, 0, 2, 2), flatten=np.bool_(True)).shape == (2, 0)
    x = torch.rand(1, 2, 3, 3)
    assert tap(x, np.float64(0.5)).shape == (1, 2, 1, 1) and torch.equal(tap(x, np.float64(0.5)), tap(x, 0.5))
