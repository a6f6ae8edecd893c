"""Train the spatio-temporal block self-supervised (semantic + motion consistency losses).

DATA is a folder of frame folders (DAVIS JPEGImages/480p, YouTube-VOS/VIS JPEGImages), a folder of
video files, or a DAVIS root such as the output of 'vos synth'. OUT receives last.pt (the newest
checkpoint, loadable by 'vos segment --block OUT/last.pt'), config.yaml, log.csv and tensorboard/.
Settings: defaults < --config YAML (e.g. configs/vos/train_reference.yaml) < flags. With --resume
and no --config, OUT/config.yaml is the base. Several processes: python -m torch.distributed.run
--nproc_per_node N -m vos train ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vos.infra.config import load_config
from vos.infra.config_flags import add_config_arguments, config_overrides
from vos.train.config import TrainConfig

HELP = "train the spatio-temporal block without labels"

# TrainConfig fields set only by a --config file (the recipe's details); every other field is a flag
CONFIG_FILE_ONLY = ("augment.grayscale_p", "augment.jitter_p", "augment.brightness", "augment.contrast",
                    "augment.saturation", "augment.hue", "augment.blur_p", "augment.blur_sigma",
                    "augment.blur_kernel_fraction", "block", "optim.warmup_iterations", "optim.weight_decay",
                    "optim.betas", "loss")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="YAML", help="config file (configs/vos/train_*.yaml)")
    add_config_arguments(parser, TrainConfig, exclude=CONFIG_FILE_ONLY)
    parser.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: defaults < YAML (--config, or OUT/config.yaml when resuming) < flags."""
    from vos.train.trainer import CONFIG_NAME

    yaml_path = args.config
    if yaml_path is None and args.resume and args.out and (Path(args.out) / CONFIG_NAME).is_file():
        yaml_path = Path(args.out) / CONFIG_NAME
    return load_config(TrainConfig, yaml_path, config_overrides(args, TrainConfig))


def run(args: argparse.Namespace) -> int:
    from vos.train.trainer import train

    result = train(config_from_args(args), resume=args.resume)
    if not result.is_main:
        return 0
    if result.losses:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
        print(f"trained to iteration {result.iterations} in {result.seconds:.1f}s ({losses}); "
              f"checkpoint {result.checkpoint}")
    else:
        print(f"nothing to do: {result.checkpoint} is already at iteration {result.iterations}")
    return 0
