"""vos: self-supervised video object segmentation.

Frozen DINO ViT keys feed one spatio-temporal Transformer block; its attention over sparse key
frames is clustered hierarchically (symmetric-KL distance) into object masks.
"""

__version__ = "0.1.0"
