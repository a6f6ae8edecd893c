"""Self-supervised pretraining: MoCo with optional FAME (foreground-background merging) and CO2.

Writes DIR/last.pt after every epoch (atomic; --resume continues it exactly), DIR/log.csv and
TensorBoard logs in DIR/tensorboard. Multi-process: python -m torch.distributed.run --nproc_per_node N
-m ssl_video pretrain ... (gloo on CPU). Example:

  ssl-video pretrain --config configs/ssl_video/pretrain_ucf101_r2plus1d.yaml --data-root UCF-101 \\
      --split-dir ucfTrainTestlist --fame --out runs/fame
"""

from __future__ import annotations

import argparse

from ssl_video.commands.common import (add_common_arguments, add_training_arguments, check_json_output,
                                       load_command_config, write_json)
from ssl_video.config import PretrainConfig

HELP = "pretrain a video backbone with MoCo (+ FAME, + CO2)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, PretrainConfig)
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ssl_video.pretrain import pretrain

    check_json_output(args, "pretrain")
    cfg = load_command_config(PretrainConfig, args)
    summary = pretrain(cfg, args.out, resume=args.resume)
    write_json({k: v for k, v in summary.items() if k != "model"}, args.json)
    return 0
