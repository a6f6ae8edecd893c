"""`vos` command line: a thin layer over the library.

Each command lives in ``vos.commands.<name>`` and provides ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; :func:`vos.infra.cli.run_cli` runs it. User errors
(:class:`vos.infra.errors.UserError`) become one line on stderr and exit status 2; tracebacks are
reserved for bugs.
"""

from __future__ import annotations

from typing import Sequence

from vos.infra.cli import run_cli

COMMANDS = {
    "segment": "vos.commands.segment",
    "synth": "vos.commands.synth",
    "eval": "vos.commands.eval",
    "train": "vos.commands.train",
    "report": "vos.commands.report",
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("vos", COMMANDS, argv, description=__doc__.splitlines()[0])
