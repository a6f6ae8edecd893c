"""Models of the segmentation pipeline: the frozen DINO key extractor and the spatio-temporal block."""

# The keys of vos.models.backbone.BACKBONES, spelled out so that the flags' choices (--help) do not import
# torch/timm (tests/test_cli_imports.py holds them equal).
BACKBONE_NAMES = ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "test_vit_tiny16", "test_vit_tiny8")
# The --weights flag of `vos segment` and `vos train` (both configs' `weights` field).
WEIGHTS_HELP = "backbone weights: a local DINO/timm/safetensors file, or 'random' (tests and benchmarks only)"
WEIGHTS_DEFAULT_HELP = "the official DINO weights, downloaded once and cached"
