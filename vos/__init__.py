"""vos: self-supervised video object segmentation.

Frozen DINO ViT keys feed one spatio-temporal Transformer block; its attention over sparse key
frames is clustered hierarchically (symmetric-KL distance) into object masks.

:mod:`vos.infra` holds the infrastructure that ``vos`` and ``ssl_video`` share (errors, files,
configs, torch.distributed, logs, video reading and writing, output rules, the CLI driver).
"""

import sys

from vos._former_paths import FormerPaths

__version__ = "0.3.0"

if not any(isinstance(finder, FormerPaths) for finder in sys.meta_path):
    sys.meta_path.append(FormerPaths())  # the former module paths (vos._former_paths)
