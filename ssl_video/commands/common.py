"""Command-line flags shared by the `ssl-video` commands that read clips, and result output.

A command's config flags are derived from its config dataclass (vos.infra.config_flags); each defaults to
None, meaning "not given": the value then comes from ``--config`` or the dataclass (see
vos.infra.config.load_config).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from ssl_video.config import command_config_keys
from vos.infra.config import load_config
from vos.infra.config_flags import add_config_arguments, config_overrides
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_write_text
from vos.infra.outputs import check_output_file, json_keys_owned


def add_common_arguments(parser: argparse.ArgumentParser, cls: type,
                         flags: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
    """--config, a flag for every field of the config dataclass ``cls`` (``flags``: argparse keywords that
    differ for this command), --json and --overwrite."""
    parser.add_argument("--config", metavar="YAML", help="config file (configs/ssl_video/*.yaml); flags override it")
    add_config_arguments(parser, cls, flags=flags)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file (retrieve: DIR/results.json) that is not an earlier "
                             "result of this command")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="run folder: DIR/last.pt (newest checkpoint), log.csv, tensorboard/, config.yaml")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from DIR/last.pt")


def load_command_config(cls: type, args: argparse.Namespace):
    """``cls`` (PretrainConfig, FinetuneConfig or RetrieveConfig) from its defaults < --config < flags.

    A config file of another ssl-video command is accepted: its keys that this command does not have
    (e.g. ``epochs`` for retrieve) are ignored with a warning.
    """
    _, others = command_config_keys(cls)
    return load_config(cls, args.config, config_overrides(args, cls), ignore_keys=others)


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
            raise UserError(f"--json {path} is a folder; give a file name")
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")


# a JSON file holding these keys (retrieve: R@k keys) is an earlier result of the command
RESULT_KEYS = {"pretrain": json_keys_owned(("epochs", "steps", "loss", "checkpoint")),
               "finetune": json_keys_owned(("video_top1", "video_top5", "clip_top1")),
               "retrieve": json_keys_owned(prefix="R@"),
               "test": json_keys_owned(("video_top1", "video_top5", "clip_top1"))}


def check_json_output(args: argparse.Namespace, command: str, path: str | Path | None = None,
                      flag: str = "--json") -> None:
    """Before any work: the JSON file ``path`` (default ``args.json``) may be written (vos.infra.outputs rules)."""
    check_output_file(args.json if path is None else path, flag, RESULT_KEYS[command],
                      f"an earlier result of `ssl-video {command}`", args.overwrite)
