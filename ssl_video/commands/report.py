"""Write an HTML report of an ssl-video run: DIR/index.html and its files in DIR/assets/, opening offline.

  ssl-video report RUN --out DIR

RUN is the --out folder of pretrain, finetune (loss, learning rate and accuracy curves; test
results, confusion matrix, per-class accuracy), test (results, confusion matrix) or retrieve (R@k).
See docs/report.md.
"""

from __future__ import annotations

import argparse

HELP = "HTML report of a pretrain/finetune run or of test/retrieve results"
REPORT_COMMAND = "ssl-video report"
SSL_VIDEO_RUNS = ("ssl-video pretrain", "ssl-video finetune", "ssl-video test", "ssl-video retrieve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="the --out folder of pretrain, finetune, test or retrieve")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (new, empty or an earlier report)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a report")


def run(args: argparse.Namespace) -> int:
    from vos.infra.run_report import write_run_report

    kind, page = write_run_report(args.run, args.out, REPORT_COMMAND, SSL_VIDEO_RUNS, args.overwrite,
                                  command_line=f"ssl-video report {args.run} --out {args.out}")
    print(f"ssl-video report: {kind} report of {args.run} -> {page}")
    return 0
