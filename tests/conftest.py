"""Test configuration: hypothesis profiles, the ``cuda`` marker and a fixed seed for every test.

Hypothesis profiles (select with ``HYPOTHESIS_PROFILE=<name>``):

- ``default``: 50 examples per property, no deadline (the 2-core CI machine is shared; timing is not tested).
- ``thorough``: 500 examples, for a local run before a release.

Tests marked ``@pytest.mark.cuda`` are skipped when no CUDA device is present.

Torch runs on one CPU thread (``CAMFIX_TEST_THREADS`` overrides): the tests use tiny tensors, and on a loaded
2-core machine two intra-op threads spinning against each other made a small ResNet's forward pass 30 times
slower (0.45 s instead of 0.015 s). For parallelism run the suite with pytest-xdist (``-n 2``).
"""

from __future__ import annotations

import os
from typing import List

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
torch.set_num_threads(int(os.environ.get("CAMFIX_TEST_THREADS", "1")))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same global RNG state, so failures reproduce and model weights are stable."""
    torch.manual_seed(0)


@pytest.fixture(params=["compiled", "pure"])
def metric_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a metrics test with the compiled kernels (``camfix.metrics._kernels``) and with the pure paths that
    replace them where the extension is not built."""
    from camfix.metrics import _native

    if request.param == "compiled":
        if _native.load() is None:
            pytest.skip("the compiled kernels are not built (pip install -e . with a C compiler)")
    else:
        monkeypatch.setattr(_native, "load", lambda: None)
    return request.param
