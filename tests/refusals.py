"""What the bad-input tests share: the promise for one refused call, tensors with a bad value in them, and
file-system failures staged with monkeypatch.

The promise: the error is raised by camfix's own check (the last frame of its traceback is in ``camfix/``), with
a message that starts with ``expected`` (the argument and what it must be) and quotes ``received``.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path
from typing import Callable

import pytest
import torch


def check_refusal(error: BaseException, expected: str, received: str) -> None:
    """``error`` keeps the promise. Plain asserts: a child process may run it without pytest."""
    message = str(error)
    assert message.startswith(expected), message
    assert received in message, message
    origin = Path(traceback.extract_tb(error.__traceback__)[-1].filename)
    assert origin.parent.name == "camfix", f"raised in {origin}, not by camfix's check: {message}"


def assert_refused(raised: pytest.ExceptionInfo, expected: str, received: str) -> None:
    """The error that ``pytest.raises`` caught keeps the promise."""
    check_refusal(raised.value, expected, received)


def refusal(call: Callable[[], object], error: type, expected: str, received: str) -> None:
    """``call()`` raises ``error`` and keeps the promise (without pytest, for child processes)."""
    try:
        call()
    except error as raised:
        check_refusal(raised, expected, received)
    else:
        raise AssertionError(f"accepted; expected {error.__name__}: {expected}")


def with_values(tensor: torch.Tensor, *values: float) -> torch.Tensor:
    """A copy of ``tensor`` with its flat elements ``1, 2, ...`` set to ``values``."""
    changed = tensor.clone()
    changed.view(-1)[1 : 1 + len(values)] = torch.tensor(values, dtype=tensor.dtype)
    return changed


def make_read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` look read-only to the checks (root may write anywhere, so chmod alone cannot show it)."""
    real_access = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(os.fspath(path)) == folder and mode & os.W_OK:  # type: ignore[arg-type]
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)


def fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``fsync`` of camfix's atomic writes fails as on a full disk."""
    from camfix import cli_support

    def full_disk(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli_support.os, "fsync", full_disk)
