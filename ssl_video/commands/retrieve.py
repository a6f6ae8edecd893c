"""Nearest-neighbour video retrieval: test videos query the training videos; R@1/5/10/20/50.

Video features are the mean of 10 uniformly spaced clips' pooled backbone features; each set is
centred by its own mean and L2-normalised; cosine similarity. Example:

  ssl-video retrieve --data-root UCF-101 --split-dir ucfTrainTestlist --pretrained runs/fame/last.pt --json r.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssl_video.commands.common import add_data_arguments, check_json_output, load_command_config, write_results
from ssl_video.config import RetrieveConfig

HELP = "video retrieval R@k with a pretrained backbone"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--pretrained", metavar="CKPT", help="checkpoint of `ssl-video pretrain` or `finetune`, or FAME's train.py / eval.py")
    parser.add_argument("--clips-per-video", type=int, help="clips averaged per video (default 10)")
    parser.add_argument("--ks", type=int, nargs="+", metavar="K", help="recall cut-offs (default 1 5 10 20 50)")
    parser.add_argument("--out", metavar="DIR", help="also write DIR/results.json")
    parser.add_argument("--batch-size", type=int,
                        help="clips per backbone pass while extracting features, whole videos at a time "
                             "(default 10: one video of 10 clips); the results do not depend on it")


def run(args: argparse.Namespace) -> int:
    from ssl_video.retrieval import retrieve

    check_json_output(args, "retrieve")
    if args.out is not None:
        check_json_output(args, "retrieve", Path(args.out) / "results.json", flag="--out")
    cfg = load_command_config(RetrieveConfig, args)
    write_results(retrieve(cfg, args.out), args.json)
    return 0
