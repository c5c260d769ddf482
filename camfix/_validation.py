"""Argument checks shared by every public entry point.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape, range or
content) with a message that names the argument, what was expected and what was received, so that a bad call
fails at camfix's boundary rather than deep inside torch or OpenCV.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import numbers
import os
import secrets
import sys
import traceback
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Number = Union[int, float]


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} numpy array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"


def check_tensor(
    name: str,
    value: object,
    ndims: Union[int, Sequence[int]],
    *,
    shape_hint: str,
    floating: bool = True,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with one of the ranks ``ndims``; return it.

    ``shape_hint`` (e.g. ``"(N, C, H, W)"``) is quoted in the error message. With ``floating`` the dtype must be
    a floating point type. Unless ``allow_empty``, a tensor with no elements is rejected. A sparse or meta tensor
    is rejected (:func:`check_dense`).
    """
    ranks = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {_describe(value)}")
    check_dense(name, value)
    if value.dim() not in ranks:
        raise ValueError(
            f"{name} must have shape {shape_hint} ({' or '.join(map(str, ranks))} dims), "
            f"got {value.dim()} dims with shape {tuple(value.shape)}"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {value.dtype}")
    if not allow_empty and value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    return value


def check_batch_or_single(
    name: str, value: object, item_ndim: int, *, item_hint: str, floating: bool = True, allow_empty_batch: bool = False
) -> Tuple[torch.Tensor, bool]:
    """Check a batch ``(N, *item)`` or a single item ``item`` (``item_ndim`` dims, e.g. ``item_hint="(H, W)"``).

    Returns the batch (a single item gets a leading dimension of 1, a view) and whether ``value`` was a single
    item, so the caller can drop that dimension from its result. The item's own dimensions must be non-empty;
    with ``allow_empty_batch`` a batch of ``N = 0`` items passes.
    """
    batch_hint = f"(N, {item_hint[1:]}"
    tensor = check_tensor(
        name, value, (item_ndim + 1, item_ndim), shape_hint=f"{batch_hint} or {item_hint}", floating=floating,
        allow_empty=True,
    )
    single = tensor.dim() == item_ndim
    batch = tensor.unsqueeze(0) if single else tensor
    check_spatial_nonempty(name, tensor)
    if batch.shape[0] == 0 and not allow_empty_batch:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tensor.shape)}")
    return batch, single


def check_dense(name: str, value: torch.Tensor) -> None:
    """Reject a tensor whose values cannot be read: a sparse (any non-strided) layout, or the meta device, which
    has shapes but no data. Reading one (a finiteness check, a minimum, a box) would fail inside torch."""
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor (layout torch.strided), got layout {value.layout}")
    if value.is_meta:
        raise TypeError(f"{name} must hold data (a CPU or CUDA tensor), got a tensor on the meta device")


def check_spatial_nonempty(name: str, value: torch.Tensor) -> None:
    """Reject a map ``(..., H, W)`` with ``H = 0`` or ``W = 0`` (an empty batch of maps passes): a map with no
    pixel has no minimum, maximum, percentile or box."""
    if 0 in value.shape[-2:]:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")


def check_finite(name: str, value: torch.Tensor) -> None:
    """Reject NaN and infinite entries: they have no meaningful place in a map, a threshold or a box."""
    if not value.is_floating_point() or value.numel() == 0:
        return
    # One min/max reduction detects any NaN or inf (they make the min or the max non-finite) without the
    # full-size boolean temporary of isfinite(); the exact counts are computed only for the error message.
    low, high = torch.aminmax(value)
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        n_nan = int(torch.isnan(value).sum())
        n_inf = int(torch.isinf(value).sum())
        raise ValueError(f"{name} must be finite, got {n_nan} NaN and {n_inf} infinite values")


def check_number(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Check that ``value`` is a real number (Python or numpy, not a bool) in the given interval; return it as
    ``float``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the range of a float lies outside any interval of floats
        number = math.inf if value > 0 else -math.inf
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if math.isnan(number) or not (above and below):
        interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return number


def check_bool(name: str, value: object) -> bool:
    """Check that ``value`` is a ``bool`` (not merely truthy: ``"no"`` and ``0`` are refused); return it."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {_describe(value)}")
    return bool(value)


def check_size(name: str, value: object) -> Tuple[int, int]:
    """Check an ``(H, W)`` size of positive integers (Python or numpy); return it as a tuple of ints."""
    if (
        not isinstance(value, (tuple, list, torch.Size))
        or len(value) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v > 0 for v in value)
    ):
        raise ValueError(f"{name} must be a pair of positive ints (H, W), got {_describe(value)}")
    return int(value[0]), int(value[1])


def check_integer_tensor(
    name: str, value: object, ndims: Union[int, Sequence[int]], *, shape_hint: str, allow_empty: bool = False
) -> torch.Tensor:
    """:func:`check_tensor` for integer dtypes (not bool): boxes, classes and labels; return the tensor."""
    tensor = check_tensor(name, value, ndims, shape_hint=shape_hint, floating=False, allow_empty=allow_empty)
    _check_integer_dtype(name, tensor)
    return tensor


def _check_integer_dtype(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {tensor.dtype}")


def check_classes(name: str, value: object, batch: int, num_classes: int) -> torch.Tensor:
    """Check one class index per image: an int64-compatible tensor or sequence of shape ``(batch,)``."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value):
            raise TypeError(f"{name} must hold ints, got {_describe(value)}")
        if value and not -(2**63) <= min(value) <= max(value) < 2**63:  # no int64 tensor can hold them
            raise ValueError(
                f"{name} must hold class indices in [0, {num_classes - 1}], got values in [{min(value)}, {max(value)}]"
            )
        value = torch.tensor([int(v) for v in value], dtype=torch.long)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or list of class indices of shape (N,), got {_describe(value)}")
    check_dense(name, value)
    _check_integer_dtype(name, value)
    if value.dim() != 1 or value.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},) (one class per image), got {tuple(value.shape)}")
    if batch and (int(value.min()) < 0 or int(value.max()) >= num_classes):
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes - 1}], "
            f"got values in [{int(value.min())}, {int(value.max())}]"
        )
    return value.long()


def check_int(name: str, value: object, low: int, high: Optional[int] = None) -> int:
    """Check that ``value`` is an integer (not a bool) in ``[low, high]`` (``high=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        interval = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {interval}, got {value}")
    return value


def check_array(
    name: str,
    value: object,
    ndims: Union[int, Sequence[int]],
    *,
    shape_hint: str,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check that ``value`` is a numpy array with one of the ranks ``ndims``; return it.

    The numpy counterpart of :func:`check_tensor` (combine with :func:`check_dtype` for a dtype).
    """
    ranks = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape {shape_hint}, got {_describe(value)}")
    if value.ndim not in ranks:
        raise ValueError(
            f"{name} must have shape {shape_hint} ({' or '.join(map(str, ranks))} dims), "
            f"got {value.ndim} dims with shape {value.shape}"
        )
    if not allow_empty and value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    return value


def check_dtype(
    name: str, value: Union[torch.Tensor, np.ndarray], dtype: Union[torch.dtype, np.dtype, type]
) -> None:
    """Check the exact dtype of a tensor (``torch.uint8``) or numpy array (``np.uint8``)."""
    expected = dtype if isinstance(value, torch.Tensor) else np.dtype(dtype)
    if value.dtype != expected:
        raise TypeError(f"{name} must have dtype {expected}, got {_describe(value)}")


def check_in_range(name: str, value: torch.Tensor, low: float, high: float) -> None:
    """Check that every entry of a (finite) tensor lies in ``[low, high]``, e.g. a probability map in [0, 1]."""
    if value.numel() == 0:
        return
    minimum, maximum = (float(v) for v in torch.aminmax(value.detach()))
    if minimum < low or maximum > high:
        raise ValueError(f"{name} must have values in [{low:g}, {high:g}], got values in [{minimum:g}, {maximum:g}]")


# ------------------------------------------------------------------------------------- output files, commands


def check_output_path(name: str, path: object, *, folder: bool = False) -> Path:
    """Check that ``path`` can be written, before any work and without creating anything; return it as a Path.

    A file path must not be an existing folder (with ``folder``: a folder path must not be an existing file), and
    the nearest existing folder on the way to it must be writable, so that writing it later (creating the missing
    folders) cannot fail for lack of a place to put it.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``.
        ValueError: ``path`` is empty.
        IsADirectoryError: a file path names an existing folder.
        NotADirectoryError: a folder path names an existing file, or a file stands where a folder is needed.
        PermissionError: the folder that would hold it is not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {_describe(path)}")
    if not os.fspath(path):
        raise ValueError(f"{name} must not be an empty path")
    target = Path(path)
    what = "folder" if folder else "file"
    if target.is_dir() and not folder:
        raise IsADirectoryError(f"{name} must be a file to write, got {str(target)!r}, an existing folder")
    if folder and target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{name} must be a folder, got {str(target)!r}, an existing file")
    absolute = Path(os.path.abspath(target))
    for ancestor in ([absolute] if folder else []) + [absolute.parent, *absolute.parent.parents]:
        if ancestor.is_dir():
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise PermissionError(
                    f"{name}: cannot write the {what} {str(target)!r}: the folder {str(ancestor)!r} is not writable"
                )
            return target
        if ancestor.exists():
            raise NotADirectoryError(
                f"{name}: cannot write the {what} {str(target)!r}: {str(ancestor)!r} is a file, not a folder"
            )
    raise FileNotFoundError(f"{name}: no existing folder on the way to {str(target)!r}")


def read_text_lines(path: Union[str, "os.PathLike[str]"]) -> List[str]:
    """The lines of a UTF-8 text file without their line ends; a file that is not UTF-8 raises ``ValueError``
    naming it and the line (Python's own message names neither)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    # Line ends as a text-mode open() reads them (\n, \r\n, \r), not str.splitlines()'s dozen.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


@contextlib.contextmanager
def atomic_write(path: Union[str, "os.PathLike[str]"]) -> Iterator[BinaryIO]:
    """Write a file all at once or not at all: ``with atomic_write(path) as stream: stream.write(...)``.

    The block writes to a temporary file beside ``path``; only when it finishes without an exception is the file
    flushed to disk and moved over ``path`` in one ``os.replace``. An exception (a full disk, a failed encoder)
    removes the temporary file and leaves whatever was at ``path`` untouched. Missing parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            # Mode 0o666 under the process umask: the permissions a plain open() would give the file.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class InputError(Exception):
    """Bad input to a command (an option's value, a file it names or holds), reported as one ``error:`` line."""


#: What a command reports as one ``error:`` line and exit status 2: bad input, i.e. a camfix argument check
#: (``TypeError``, ``ValueError``), a command's own check (:class:`InputError`) or a file that cannot be read or
#: written (``OSError``). Any other exception is a bug and keeps its traceback.
USER_ERRORS = (InputError, ValueError, TypeError, OSError)
#: Exit status of a command refused for bad input (argparse's for a bad option, too).
USAGE_ERROR_STATUS = 2


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """Give a command's parser the ``--debug`` option that :func:`run_command` looks for."""
    parser.add_argument(
        "--debug", action="store_true", help="on bad input, print the Python traceback above the one-line error"
    )


def run_command(prog: str, main: Callable[[], Optional[int]], argv: Sequence[str]) -> int:
    """Run a command's ``main`` and return its exit status (``None`` counts as 0).

    A user error (:data:`USER_ERRORS`) becomes ``<prog>: error: <message>`` on one line of stderr and status 2;
    with ``--debug`` among ``argv`` its traceback is printed first.
    """
    try:
        status = main()
    except USER_ERRORS as error:
        if "--debug" in argv:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return USAGE_ERROR_STATUS
    return 0 if status is None else int(status)
