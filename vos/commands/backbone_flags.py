"""The --backbone and --weights flags of `vos segment` and `vos train`."""

from __future__ import annotations

import argparse

# The keys of vos.models.backbone.BACKBONES, spelled out so that --help does not import torch/timm.
BACKBONE_NAMES = ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "test_vit_tiny16",
                  "test_vit_tiny8")


def add_backbone_arguments(parser: argparse.ArgumentParser, default_help: str) -> None:
    """--backbone/--weights. Both default to None ("not given"), so that a --config file or a --block
    checkpoint decides; ``default_help`` says what applies then."""
    parser.add_argument("--backbone", choices=BACKBONE_NAMES, default=None,
                        help=f"frozen DINO ViT (default: {default_help})")
    parser.add_argument("--weights", default=None, metavar="PATH|random",
                        help="backbone weights: a local DINO/timm/safetensors file, or 'random' (tests and "
                             "benchmarks only); default: the official DINO weights, downloaded once and cached")
