"""vos: self-supervised video object segmentation.

Frozen DINO ViT keys feed one spatio-temporal Transformer block; its attention over sparse key
frames is clustered hierarchically (symmetric-KL distance) into object masks.

:mod:`vos.infra` holds the infrastructure that ``vos`` and ``ssl_video`` share (errors, files,
configs, torch.distributed, logs, video reading and writing, output rules, the CLI driver).
"""

import sys

from vos._former_paths import MovedModules

__version__ = "0.2.0"

if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(MovedModules())  # the former module paths (vos._former_paths)
