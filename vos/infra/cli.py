"""The command-line driver of ``vos`` and ``ssl-video``: one sub-command per module.

A command module provides ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. A
:class:`~vos.infra.errors.UserError` becomes one line on stderr and exit status 2; tracebacks are
reserved for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Mapping, Sequence

from vos.infra.errors import UserError


def build_parser(prog: str, commands: Mapping[str, str], description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in commands.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def run_cli(prog: str, commands: Mapping[str, str], argv: Sequence[str] | None, description: str | None = None) -> int:
    """Parse ``argv``, run the chosen command and map user errors to a one-line message + exit 2."""
    parser = build_parser(prog, commands, description)
    warnings.formatwarning = lambda message, *_, **__: f"{prog}: warning: {message}\n"
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
