"""The command line of the recipe's scripts: how each one ends and what it checks first.

:func:`run_main` runs a script's ``main`` with camfix's one-line errors (``camfix.cli_support.run_command``): bad
input (``camfix.cli_support.InputError``, ``ValueError``, ``TypeError`` or ``OSError``) becomes
``<script>: error: <message>`` and exit status 2, ``--debug`` adds the traceback. :func:`check_output_folder` checks
``--out`` before any work, so that a run never fails at its first write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from camfix.cli_support import check_output_path, run_command

__all__ = ["check_output_folder", "run_main"]


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main`` and exit: bad input (an :class:`InputError`, ``ValueError``, ``TypeError`` or
    ``OSError``) becomes ``<script>: error: <message>`` on stderr and exit status 2 (``--debug``: with its
    traceback)."""
    raise SystemExit(run_command(Path(sys.argv[0]).name, main, sys.argv[1:]))


def check_output_folder(parser: argparse.ArgumentParser, out: Path) -> None:
    """End with ``parser.error`` unless ``--out`` is, or can be created as, a writable folder; checked before any
    work, so that a run never fails at its first write."""
    try:
        check_output_path("--out", out, folder=True)
    except (TypeError, ValueError, OSError) as error:
        parser.error(str(error))
