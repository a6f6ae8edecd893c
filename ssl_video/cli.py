"""`ssl-video` command line: video representation learning (MoCo + FAME + CO2) and its evaluation.

A thin layer over the library; each command lives in ``ssl_video.commands.<name>`` with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. User errors exit with one line and status 2.
"""

from __future__ import annotations

from typing import Sequence

from vos.infra.cli import run_cli

COMMANDS: dict[str, str] = {
    "synth": "ssl_video.commands.synth",
    "pretrain": "ssl_video.commands.pretrain",
    "finetune": "ssl_video.commands.finetune",
    "retrieve": "ssl_video.commands.retrieve",
    "test": "ssl_video.commands.test",
    "report": "ssl_video.commands.report",
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("ssl-video", COMMANDS, argv, description=__doc__.splitlines()[0])
