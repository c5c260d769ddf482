"""The ``camfix`` command line: ``camfix demo`` and ``camfix evaluate``.

Each subcommand lives in the module that owns its concept and provides ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so ``camfix --help`` stays fast. A subcommand checks its
inputs before its work and raises on bad input; :func:`main` reports that as one ``camfix <command>: error: ...``
line with exit status 2 (``--debug`` adds the traceback), see ``docs/errors.md``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Dict, List, Optional, Tuple

from .cli_support import add_debug_option, run_command

# subcommand -> (module, one-line help)
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "demo": ("camfix.demo.cli", "reproduce the paper's ablation on the built-in synthetic benchmark"),
    "evaluate": ("camfix.metrics.cli", "evaluate saved score maps against WSOL/LID metadata"),
}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="camfix", description="Class activation mapping, fixed.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    add_debug_option(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    known, _ = parser.parse_known_args(argv)
    if known.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[known.command][0])
    subparser = argparse.ArgumentParser(
        prog=f"camfix {known.command}", description=SUBCOMMANDS[known.command][1]
    )
    subparser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    add_debug_option(subparser)
    module.add_arguments(subparser)
    args = subparser.parse_args(argv[argv.index(known.command) + 1 :])
    logging.basicConfig(
        level=logging.DEBUG if (args.verbose or known.verbose) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(f"camfix {known.command}", lambda: module.run(args), argv)


if __name__ == "__main__":
    sys.exit(main())
