"""DAVIS label maps as indexed PNGs with the PASCAL-VOC/DAVIS palette.

Indices carry the meaning (0 background, k object k, 255 void in ground truth); the palette is only
for display. This is exactly what the DAVIS toolkit reads and writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from vos.infra.errors import UserError
from vos.infra.fileio import atomic_path


def davis_palette(n: int = 256) -> np.ndarray:
    """The PASCAL-VOC colour map (bit-interleaved), uint8 (n, 3); entry 0 is black."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


_PALETTE = davis_palette().flatten().tolist()


# zlib level of PIL's PNG writer by default, and of the DAVIS toolkit's masks
DEFAULT_COMPRESS_LEVEL = 6


def write_label_png(path: str | os.PathLike, labels: np.ndarray, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> None:
    """Write an (H, W) integer label map as a single-channel palette PNG, atomically. ``compress_level``
    (zlib, 0-9) changes only the file size and the time taken, never the pixels."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise UserError(f"{path}: a label map must be 2-D (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise UserError(f"{path}: label values must lie in 0..255, got {labels.min()}..{labels.max()}")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(_PALETTE)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level)


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a DAVIS-style label PNG as a uint8 (H, W) array of indices.

    Palette ('P') and grayscale ('L') PNGs are accepted; an RGB(A) PNG is an error, because its
    colours are not object ids (the official toolkit would silently misread it).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: label PNG not found")
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in ("P", "L", "1"):
                raise UserError(
                    f"{path}: label PNG is {mode}, not indexed; save masks as single-channel "
                    "palette PNGs (index = object id), e.g. with vos.palette.write_label_png"
                )
            return np.array(image, dtype=np.uint8)
    except UserError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise UserError(f"{path}: cannot read label PNG ({exc})") from exc
