"""Command-line flags shared by `ssl-video pretrain`, `finetune` and `retrieve`, and result output.

Every flag defaults to None, meaning "not given": the value then comes from ``--config`` or the
config dataclass (see vos.config.load_config).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssl_video.config import command_config_keys
from vos.config import load_config
from vos.errors import VosError
from vos.fileio import atomic_write_text
from vos.outputs import check_output_file, json_keys_owned

DATASETS = ("ucf101", "hmdb51", "kinetics", "folder")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="config file (configs/ssl_video/*.yaml); flags override it")
    parser.add_argument("--dataset", choices=DATASETS, help="dataset layout (default ucf101)")
    parser.add_argument("--data-root", metavar="DIR", help="folder with the videos")
    parser.add_argument("--split-dir", metavar="DIR", help="folder with the split files (default: found under --data-root)")
    parser.add_argument("--split", type=int, help="official split 1, 2 or 3 (default 1)")
    parser.add_argument("--arch", help="backbone: r3d_18, mc3_18, r2plus1d_18, s3d, i3d or r3d_tiny")
    parser.add_argument("--frames", type=int, help="frames per clip (default 16)")
    parser.add_argument("--frame-stride", type=int, help="temporal stride between sampled frames (default 2)")
    parser.add_argument("--crop", type=int, help="spatial crop size in pixels (default 112)")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (default 4)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file (retrieve: DIR/results.json) that is not an earlier "
                             "result of this command")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="run folder: DIR/last.pt (newest checkpoint), log.csv, tensorboard/, config.yaml")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from DIR/last.pt")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--batch-size", type=int, help="clips per step (per process under torchrun)")
    parser.add_argument("--lr", type=float, help="base learning rate (SGD)")
    parser.add_argument("--weight-decay", type=float, help="SGD weight decay")


def overrides(args: argparse.Namespace, names: list[str]) -> dict:
    """The config fields given on the command line (argparse dest names equal config field names)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def load_command_config(cls: type, args: argparse.Namespace):
    """``cls`` (PretrainConfig, FinetuneConfig or RetrieveConfig) from its defaults < --config < flags.

    A config file of another ssl-video command is accepted: its keys that this command does not have
    (e.g. ``epochs`` for retrieve) are ignored with a warning.
    """
    own, others = command_config_keys(cls)
    return load_config(cls, args.config, overrides(args, sorted(own)), ignore_keys=others)


def write_results(results: dict, json_path: str | None) -> None:
    """Print ``results`` (percentages) as a two-column table; with ``json_path`` also write them as JSON."""
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  value (%)")
    for key, value in results.items():
        print(f"{key:<{width}}  {value:6.2f}")
    write_json(results, json_path)


def write_json(results: dict, json_path: str | None) -> None:
    if json_path:
        path = Path(json_path)
        if path.is_dir():
            raise VosError(f"--json {path} is a folder; give a file name")
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")


# a JSON file holding these keys (retrieve: R@k keys) is an earlier result of the command
RESULT_KEYS = {"pretrain": json_keys_owned(("epochs", "steps", "loss", "checkpoint")),
               "finetune": json_keys_owned(("video_top1", "video_top5", "clip_top1")),
               "retrieve": json_keys_owned(prefix="R@"),
               "test": json_keys_owned(("video_top1", "video_top5", "clip_top1"))}


def check_json_output(args: argparse.Namespace, command: str, path: str | Path | None = None,
                      flag: str = "--json") -> None:
    """Before any work: the JSON file ``path`` (default ``args.json``) may be written (vos.outputs rules)."""
    check_output_file(args.json if path is None else path, flag, RESULT_KEYS[command],
                      f"an earlier result of `ssl-video {command}`", args.overwrite)
