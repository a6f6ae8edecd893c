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

from vos.commands.backbone_flags import add_backbone_arguments
from vos.config import load_config
from vos.train.config import TrainConfig

HELP = "train the spatio-temporal block without labels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, metavar="DIR", help="training videos (see above)")
    parser.add_argument("--out", default=None, metavar="DIR", help="checkpoints and logs")
    parser.add_argument("--config", default=None, metavar="YAML", help="config file (configs/vos/train_*.yaml)")
    add_backbone_arguments(parser, default_help="the config file's, else dino_vits16")
    parser.add_argument("--init-block", default=None, metavar="CKPT",
                        help="start from this block instead of a random one: a 'vos train' checkpoint or the "
                             "SSL-UVOS release file (its backbone must be --backbone's; pass the same file as "
                             "--weights to train on the release's encoder)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: 3)")
    parser.add_argument("--gap", type=int, default=None, help="frame stride in a clip, reduced for short videos (default: 4)")
    parser.add_argument("--resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="backbone input size, rounded to the patch size (default: 192 384)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per process and iteration (default: 1)")
    parser.add_argument("--iterations", type=int, default=None, help="total iterations (default: 60000)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate, cosine-decayed to --min-lr (default: 1e-5)")
    parser.add_argument("--min-lr", type=float, default=None, help="final learning rate (default: 1e-6)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="iterations between checkpoints (default: 1000)")
    parser.add_argument("--log-every", type=int, default=None, help="iterations between log rows (default: 10)")
    parser.add_argument("--cache-features", default=None, metavar="DIR",
                        help="compute backbone features once into DIR (memory-mapped) and train from them")
    parser.add_argument("--cache-variants", type=int, default=None,
                        help="augmented copies per video in the cache; 1 = unaugmented only (default: 1)")
    parser.add_argument("--no-augment", action="store_const", const=False, default=None, dest="augment",
                        help="no photometric augmentation")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: auto")
    parser.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: defaults < YAML (--config, or OUT/config.yaml when resuming) < flags."""
    from vos.train.trainer import CONFIG_NAME

    yaml_path = args.config
    if yaml_path is None and args.resume and args.out and (Path(args.out) / CONFIG_NAME).is_file():
        yaml_path = Path(args.out) / CONFIG_NAME
    overrides = {
        "data": args.data, "out": args.out, "backbone": args.backbone, "weights": args.weights, "init_block": args.init_block,
        "frames": args.frames, "gap": args.gap, "resolution": args.resolution, "batch_size": args.batch_size,
        "iterations": args.iterations, "optim.lr": args.lr, "optim.min_lr": args.min_lr, "seed": args.seed,
        "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
        "cache_features": args.cache_features, "cache_variants": args.cache_variants,
        "augment.enabled": args.augment, "device": args.device,
    }
    return load_config(TrainConfig, yaml_path, overrides)


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
