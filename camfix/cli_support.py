"""What command-line scripts built on camfix need, public: one-line errors, option checks, safe output files.

camfix's own commands (``camfix evaluate``, ``camfix demo``) and the example scripts (``examples/``) share these,
so that every command treats bad input the same way (``docs/errors.md``):

- :func:`run_command` runs a command's ``main``: bad input (:class:`InputError`, or a ``ValueError``,
  ``TypeError`` or ``OSError`` from a check) becomes one ``<prog>: error: <message>`` line on stderr and exit
  status 2; :func:`add_debug_option` gives the parser ``--debug``, which adds the traceback.
- :func:`check_int` and :func:`check_number` check an option's value (camfix's own argument checks, so an option
  fails with the message a function argument would give).
- :func:`check_output_path` checks, before any work and without creating anything, that a file or folder can be
  written; :func:`atomic_write` writes a file all at once or not at all.
- :func:`read_text_lines` reads a UTF-8 text file, naming the file and line of a decoding error.

Example:
    >>> import argparse
    >>> from camfix.cli_support import InputError, add_debug_option, check_int, run_command
    >>> parser = argparse.ArgumentParser(prog="count")
    >>> _ = parser.add_argument("--times", type=int, default=1)
    >>> add_debug_option(parser)
    >>> def main(argv):
    ...     args = parser.parse_args(argv)
    ...     check_int("--times", args.times, 1)
    ...     print("ok " * args.times)
    >>> run_command("count", lambda: main(["--times", "2"]), ["--times", "2"])
    ok ok
    0
    >>> run_command("count", lambda: main(["--times", "0"]), ["--times", "0"])  # prints: count: error: --times ...
    2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import traceback
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Sequence, Union

from ._validation import check_int, check_number, describe

__all__ = [
    "USAGE_ERROR_STATUS",
    "USER_ERRORS",
    "InputError",
    "add_debug_option",
    "atomic_write",
    "check_int",
    "check_number",
    "check_output_path",
    "read_text_lines",
    "run_command",
]


def check_output_path(name: str, path: object, *, folder: bool = False) -> Path:
    """Check that ``path`` can be written, before any work and without creating anything.

    A file path must not be an existing folder (with ``folder``: a folder path must not be an existing file), and
    the nearest existing folder on the way to it must be writable, so that writing it later (creating the missing
    folders) cannot fail for lack of a place to put it.

    Args:
        name: the option's or argument's name, for the message (e.g. ``"--out"``).
        path: the file, or with ``folder`` the folder, to be written.
        folder: ``path`` is a folder to create or write into, not a file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``path`` is not a ``str`` or ``os.PathLike``.
        ValueError: ``path`` is empty.
        IsADirectoryError: a file path names an existing folder.
        NotADirectoryError: a folder path names an existing file, or a file stands where a folder is needed.
        PermissionError: the folder that would hold it is not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {describe(path)}")
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
    """The lines of a UTF-8 text file without their line ends (LF, CRLF or CR, as a text-mode ``open`` reads them).

    Args:
        path: the file to read.

    Returns:
        Its lines, in order; a file that ends with a line end gives a last, empty line.

    Raises:
        ValueError: the file is not UTF-8 text; the message names the file and line (Python's own names neither).
        OSError: the file cannot be read (missing, a folder, no permission).
    """
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

    Args:
        path: the file to write (check it first with :func:`check_output_path`, before the work that fills it).

    Returns:
        A context manager whose value is the binary stream to write to.
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
    """Give a command's parser the ``--debug`` option that :func:`run_command` looks for.

    Args:
        parser: the command's parser (or an argument group of it).
    """
    parser.add_argument(
        "--debug", action="store_true", help="on bad input, print the Python traceback above the one-line error"
    )


def run_command(prog: str, main: Callable[[], Optional[int]], argv: Sequence[str]) -> int:
    """Run a command's ``main`` and return its exit status: ``sys.exit(run_command(prog, main, argv))``.

    A user error (:data:`USER_ERRORS`) becomes ``<prog>: error: <message>`` on one line of stderr and status
    :data:`USAGE_ERROR_STATUS` (2); with ``--debug`` among ``argv`` its traceback is printed first. Any other
    exception is a bug and propagates with its traceback.

    Args:
        prog: the command's name, the start of the error line (e.g. ``Path(sys.argv[0]).name``).
        main: the command's work, called with no argument; it returns an exit status or ``None``.
        argv: the command line's arguments, where ``--debug`` is looked for.

    Returns:
        ``main``'s status (``None`` counts as 0), or 2 after a user error.
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
