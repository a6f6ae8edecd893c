"""Models of the segmentation pipeline: the frozen ViT key extractors (DINO, DINOv2, DINOv3) and the
spatio-temporal block."""

# The keys of vos.models.backbone.BACKBONES, spelled out so that the flags' choices (--help) do not import
# torch/timm (tests/test_cli_imports.py holds them equal).
BACKBONE_NAMES = ("dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8", "test_vit_tiny16", "test_vit_tiny8",
                  "dinov2_vits14", "dinov2_vits14_reg", "dinov2_vitb14", "dinov2_vitb14_reg",
                  "test_dinov2_tiny14", "test_dinov2_reg_tiny14",
                  "dinov3_vits16", "dinov3_vitb16", "test_dinov3_tiny16")
# The --weights flag of `vos segment` and `vos train` (both configs' `weights` field).
WEIGHTS_HELP = ("backbone weights: a local file (the official DINO/DINOv2/DINOv3 file, a timm or safetensors state "
                "dict), or 'random' (tests and benchmarks only)")
WEIGHTS_DEFAULT_HELP = "the official weights, downloaded once and cached"
