#!/usr/bin/env python
"""Thin script for DAVIS evaluation: the same flags and output as ``vos eval davis``.

  python tools/eval_davis.py --davis-root DAVIS --results DIR [--task unsupervised] [--json out.json]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos.cli import COMMANDS, run_cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli("vos", {"eval": COMMANDS["eval"]}, ["eval", "davis", *sys.argv[1:]]))
