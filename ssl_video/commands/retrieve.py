"""Nearest-neighbour video retrieval: test videos query the training videos; R@1/5/10/20/50.

Video features are the mean of 10 uniformly spaced clips' pooled backbone features; each set is
centred by its own mean and L2-normalised; cosine similarity. Example:

  ssl-video retrieve --data-root UCF-101 --split-dir ucfTrainTestlist --pretrained runs/fame/last.pt --json r.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssl_video.commands.common import add_common_arguments, check_json_output, load_command_config, write_results
from ssl_video.config import RetrieveConfig

HELP = "video retrieval R@k with a pretrained backbone"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, RetrieveConfig)
    parser.add_argument("--out", metavar="DIR", help="also write DIR/results.json")


def run(args: argparse.Namespace) -> int:
    from ssl_video.retrieval import retrieve

    check_json_output(args, "retrieve")
    if args.out is not None:
        check_json_output(args, "retrieve", Path(args.out) / "results.json", flag="--out")
    cfg = load_command_config(RetrieveConfig, args)
    write_results(retrieve(cfg, args.out), args.json)
    return 0
