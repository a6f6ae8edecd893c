"""Nearest-neighbour video retrieval: test videos query the training videos; R@1/5/10/20/50.

Video features are the mean of 10 uniformly spaced clips' pooled backbone features; each set is
centred by its own mean and L2-normalised; cosine similarity. Example:

  ssl-video retrieve --data-root UCF-101 --split-dir ucfTrainTestlist --pretrained runs/fame/last.pt --json r.json
"""

from __future__ import annotations

import argparse
import dataclasses

from ssl_video.commands.common import add_data_arguments, overrides, write_results
from ssl_video.retrieval import RetrieveConfig, retrieve
from vos.config import load_config

HELP = "video retrieval R@k with a pretrained backbone"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--pretrained", metavar="CKPT", help="checkpoint of `ssl-video pretrain` or `finetune`, or FAME's train.py / eval.py")
    parser.add_argument("--clips-per-video", type=int, help="clips averaged per video (default 10)")
    parser.add_argument("--ks", type=int, nargs="+", metavar="K", help="recall cut-offs (default 1 5 10 20 50)")
    parser.add_argument("--out", metavar="DIR", help="also write DIR/results.json")


def run(args: argparse.Namespace) -> int:
    names = [f.name for f in dataclasses.fields(RetrieveConfig)]
    cfg = load_config(RetrieveConfig, args.config, overrides(args, names))
    write_results(retrieve(cfg, args.out), args.json)
    return 0
