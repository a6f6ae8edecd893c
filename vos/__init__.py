"""vos: self-supervised video object segmentation.

Frozen DINO ViT keys feed one spatio-temporal Transformer block; its attention over sparse key
frames is clustered hierarchically (symmetric-KL distance) into object masks.

:mod:`vos.infra` holds the infrastructure that ``vos`` and ``ssl_video`` share (errors, files,
configs, torch.distributed, logs, video reading and writing, output rules, the CLI driver).
"""

__version__ = "0.2.0"
