"""Overlays for people to look at: label maps blended onto frames (written with
:class:`vos.infra.video_writer.VideoWriter`), and how `vos segment` recognises its own."""

from __future__ import annotations

import os

import cv2
import numpy as np

from vos.infra.errors import UserError
from vos.palette import davis_palette

_PALETTE_LUT = davis_palette().reshape(256, 1, 3)  # cv2.LUT table: label -> RGB
# mp4 "comment" tag of the overlays `vos segment` writes: an existing file carrying it may be replaced
OVERLAY_COMMENT = "vos segment overlay"


def is_our_overlay(path: str | os.PathLike) -> bool:
    """``path`` is an mp4 whose comment tag is :data:`OVERLAY_COMMENT` (an earlier overlay of ours)."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment") == OVERLAY_COMMENT
    except Exception:  # not a video at all: FFmpeg's errors are not one class
        return False


def object_contours(labels: np.ndarray) -> np.ndarray:
    """Bool (H, W): object pixels (label > 0) with a 4-neighbour of a different label."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return differs & (labels > 0)


def blend(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5, contours: bool = False) -> np.ndarray:
    """Colour objects of ``labels`` (H, W ints, 0 = background) onto ``frame`` (H, W, 3 uint8 RGB).

    Object pixels become ``(1 - alpha) * frame + alpha * palette[label]`` (DAVIS palette); the
    background stays exactly as it was. With ``contours`` the object borders are drawn black,
    as in the DAVIS overlays.
    """
    frame = np.asarray(frame)
    labels = np.asarray(labels)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise UserError(f"blend: frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    if labels.shape != frame.shape[:2]:
        raise UserError(f"blend: labels {labels.shape} do not match the frame size {frame.shape[:2]}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise UserError(f"blend: label values must lie in 0..255, got {labels.min()}..{labels.max()}")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"blend: alpha must lie in [0, 1], got {alpha}")
    # Whole-image table lookup and blend, then copy back the objects: whole-image cv2 passes are
    # cheaper than indexing the palette with the label array and blending only object pixels.
    index = labels.astype(np.uint8)
    colours = cv2.LUT(cv2.merge([index, index, index]), _PALETTE_LUT)
    blended = cv2.addWeighted(frame, 1.0 - alpha, colours, alpha, 0.0)
    out = frame.copy()
    np.copyto(out, blended, where=(index > 0)[..., None])
    if contours:
        out[object_contours(labels)] = 0
    return out

