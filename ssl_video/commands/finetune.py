"""Action recognition from a pretrained backbone: fine-tuning, or the linear probe with --linear.

Test protocol: 10 uniformly spaced clips per test video, logits averaged (video-level top-1/top-5),
clip-level top-1 beside it. Example:

  ssl-video finetune --config configs/ssl_video/finetune_ucf101_r2plus1d.yaml --data-root UCF-101 \\
      --split-dir ucfTrainTestlist --pretrained runs/fame/last.pt --out runs/fame_ft --json ft.json
"""

from __future__ import annotations

import argparse
import os

from ssl_video.commands.common import (add_common_arguments, add_training_arguments, check_json_output,
                                       load_command_config, write_results)
from ssl_video.config import FinetuneConfig

HELP = "fine-tune or linear-probe a pretrained backbone and report video-level accuracy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, FinetuneConfig)
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ssl_video.finetune import finetune

    check_json_output(args, "finetune")
    cfg = load_command_config(FinetuneConfig, args)
    results = finetune(cfg, args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process has the results: one reports
        write_results(results, args.json)
    return 0
