"""Video backbones behind one registry: ``build_backbone(arch)`` -> module mapping clips to features.

Every backbone takes normalised clips ``(B, C, T, H, W)`` and returns pooled features ``(B, D)``;
``D`` is its ``feature_dim`` attribute. Classification heads are not part of a backbone: MoCo adds
its projection head, fine-tuning adds a linear classifier.
"""

from ssl_video.models.registry import build_backbone, list_backbones, register_backbone
from ssl_video.models import i3d, resnet3d  # noqa: F401  (importing registers the architectures)

__all__ = ["build_backbone", "list_backbones", "register_backbone"]
