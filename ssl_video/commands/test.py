"""Test a fine-tuned checkpoint without training: finetune's test step (10 uniformly spaced clips per
held-out video, scores averaged per video: video top-1/top-5, clip top-1), same JSON keys.

Accepts `ssl-video finetune` checkpoints (DIR/last.pt) and FAME's fine-tuned I3D (its eval.py
checkpoint). Data settings default to the checkpoint's: the fine-tuning run's own, or FAME's eval
settings (UCF101 split 1, 16 frames at stride 2, 224 px, 10 clips); --config and flags override them.
--protocol fame reproduces FAME eval.py's test. FAME's released UCF101 model (reported Acc@1 88.9):

  ssl-video test --checkpoint FAME_I3D_UCF101_finetuned.pth.tar --data-root UCF-101 \\
      --split-dir ucfTrainTestlist --protocol fame --json test.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import yaml

from ssl_video.commands.common import add_common_arguments, check_json_output, command_config_keys, write_results
from ssl_video.config import ARCH_HELP, EvaluateConfig
from vos.infra.config import load_config
from vos.infra.config_flags import config_overrides

HELP = "test a fine-tuned checkpoint (this project's or FAME's) with the 10-clip video-level protocol"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, EvaluateConfig, flags={"checkpoint": {"required": True}})
    # not an EvaluateConfig field: the backbone is the checkpoint's, and --arch only checks it
    parser.add_argument("--arch", help=ARCH_HELP + "; must be the checkpoint's (default: the checkpoint's)")
    parser.add_argument("--out", metavar="DIR", help="also write DIR/results.json and DIR/predictions.csv "
                                                     "(each test video's predicted class)")


def run(args: argparse.Namespace) -> int:
    from ssl_video.evaluation import checkpoint_settings, evaluate_checkpoint
    from ssl_video.finetune import PREDICTIONS_CSV, predictions_owned
    from vos.infra.outputs import check_output_file
    from ssl_video.pretrained import read_weights

    check_json_output(args, "test")
    if args.out is not None:
        check_json_output(args, "test", Path(args.out) / "results.json", flag="--out")
        check_output_file(Path(args.out) / PREDICTIONS_CSV, "--out", predictions_owned,
                          "predictions written by `ssl-video test`", args.overwrite)
    _, others = command_config_keys(EvaluateConfig)
    flags = config_overrides(args, EvaluateConfig)
    cfg = load_config(EvaluateConfig, args.config, flags, ignore_keys=others)  # --config checked before the checkpoint
    in_yaml = set(yaml.safe_load(Path(args.config).read_text()) or {}) if args.config else set()
    weights = read_weights(args.checkpoint, args.arch, flag="--checkpoint")
    # precedence: defaults < the checkpoint's settings < --config < flags
    cfg = dataclasses.replace(cfg, **{k: v for k, v in checkpoint_settings(weights).items()
                                      if k not in in_yaml and k not in flags})
    results = evaluate_checkpoint(cfg, args.out, weights=weights)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process has the results: one reports
        write_results(results, args.json)
    return 0
