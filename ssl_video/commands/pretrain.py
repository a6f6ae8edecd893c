"""Self-supervised pretraining: MoCo with optional FAME (foreground-background merging) and CO2.

Writes DIR/last.pt after every epoch (atomic; --resume continues it exactly), DIR/log.csv and
TensorBoard logs in DIR/tensorboard. Multi-process: python -m torch.distributed.run --nproc_per_node N
-m ssl_video pretrain ... (gloo on CPU). Example:

  ssl-video pretrain --config configs/ssl_video/pretrain_ucf101_r2plus1d.yaml --data-root UCF-101 \\
      --split-dir ucfTrainTestlist --fame --out runs/fame
"""

from __future__ import annotations

import argparse

from ssl_video.commands.common import (add_data_arguments, add_training_arguments, check_json_output,
                                       load_command_config, write_json)
from ssl_video.config import PretrainConfig

HELP = "pretrain a video backbone with MoCo (+ FAME, + CO2)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--moco-k", type=int, help="queue length (2048 for UCF101, 65536 for Kinetics)")
    parser.add_argument("--moco-m", type=float, help="key-encoder momentum (default 0.999)")
    parser.add_argument("--moco-t", type=float, help="InfoNCE temperature (default 0.1)")
    parser.add_argument("--moco-dim", type=int, help="embedding size (default 128)")
    parser.add_argument("--mlp", action=argparse.BooleanOptionalAction, default=None,
                        help="MLP projection head (default on; --no-mlp for a linear head as FAME's I3D)")
    parser.add_argument("--color-jitter", type=float, metavar="S",
                        help="colour-jitter strength: magnitudes (0.4, 0.4, 0.4, 0.1) x S, p 0.8 (default 1; 0 = off)")
    parser.add_argument("--grayscale", type=float, metavar="P", help="grayscale probability (default 0.2)")
    parser.add_argument("--fame", action=argparse.BooleanOptionalAction, default=None,
                        help="foreground-background merging on the query clip")
    parser.add_argument("--beta", type=float, help="FAME foreground ratio (default 0.5)")
    parser.add_argument("--fame-both", action=argparse.BooleanOptionalAction, default=None,
                        help="apply FAME to both clips")
    parser.add_argument("--co2", type=float, metavar="ALPHA", help="weight of the CO2 consistency term (default 0 = off)")
    parser.add_argument("--co2-t", type=float, help="temperature of the CO2 distributions (default 0.05)")


def run(args: argparse.Namespace) -> int:
    from ssl_video.pretrain import pretrain

    check_json_output(args, "pretrain")
    cfg = load_command_config(PretrainConfig, args)
    summary = pretrain(cfg, args.out, resume=args.resume)
    write_json({k: v for k, v in summary.items() if k != "model"}, args.json)
    return 0
