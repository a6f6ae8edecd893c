"""Input checks shared by both clustering paths: one-line :class:`vos.infra.errors.UserError` messages
naming the frame and patch, never a traceback from deep inside the clustering.

Every check is plain torch, so it runs on the attention's device.
"""

from __future__ import annotations

import numbers
from typing import Callable

import torch

from vos.infra.errors import UserError

# window_attention(t0, t1) -> attention of frames t0..t1-1, shape (t1 - t0, N, K)
WindowAttention = Callable[[int, int], torch.Tensor]


def check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")


def check_arguments(num_frames, tau, window, chunk_rows=None, threads=None) -> float:
    """Check the arguments of a clustering call -> tau as a float."""
    check_positive_int(num_frames, "num_frames (number of frames)")
    check_positive_int(window, "window (frames per clustering window)")
    if chunk_rows is not None:
        check_positive_int(chunk_rows, "chunk_rows")
    if threads is not None:
        check_positive_int(threads, "threads")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (0 < tau < float("inf")):
        raise UserError(f"tau (clustering distance threshold) must be a finite number > 0, got {tau!r}")
    return float(tau)


def checked_window(window_attention: WindowAttention, t0: int, t1: int,
                   patches_keys: tuple[int, int] | None) -> torch.Tensor:
    """Fetch and check the attention of frames t0..t1-1 -> (t1-t0) N K, as given (dtype, device);
    ``patches_keys``: the (N, K) of earlier windows, if any."""
    attention = window_attention(t0, t1)
    where = f"attention of frames {t0}..{t1 - 1}"
    if not isinstance(attention, torch.Tensor) or not attention.is_floating_point():
        kind = attention.dtype if isinstance(attention, torch.Tensor) else type(attention).__name__
        raise UserError(f"{where}: expected a float tensor, got {kind}; pass attention probabilities")
    if attention.ndim != 3 or attention.shape[0] != t1 - t0:
        raise UserError(f"{where}: expected shape ({t1 - t0}, patches, keys), got {tuple(attention.shape)}")
    num_patches, num_keys = attention.shape[1:]
    if num_patches == 0 or num_keys == 0:
        raise UserError(f"{where}: has {num_patches} patches and {num_keys} keys per patch; both must be "
                       f"at least 1 (K = 0 means no key frame: use more frames or a smaller key-frame ratio)")
    if patches_keys is not None and (num_patches, num_keys) != patches_keys:
        raise UserError(f"{where}: has (patches, keys) = {(num_patches, num_keys)} but earlier frames have "
                       f"{patches_keys}; every frame needs the same patches and keys")
    low, high = torch.aminmax(attention)  # one pass; nan makes both comparisons below false
    if not (low >= 0 and high < float("inf")):
        for bad, what in ((~torch.isfinite(attention), "a non-finite value (nan/inf)"),
                          (attention < 0, "a negative value")):
            if bad.any():
                t, n, _ = torch.nonzero(bad)[0].tolist()
                raise UserError(f"{where}: patch {n} of frame {t0 + t} has {what}; attention maps must be "
                               f"finite and non-negative")
    return attention.detach()


def check_row_sums(sums: torch.Tensor, t0: int, num_patches: int) -> None:
    """Row sums of a window's attention (M, frames from t0 on, N = num_patches rows each) must be > 0."""
    if (sums <= 0).any():
        n = int(torch.nonzero(sums <= 0)[0])
        raise UserError(f"attention of frames {t0}..{t0 + (sums.numel() - 1) // num_patches}: patch "
                       f"{n % num_patches} of frame {t0 + n // num_patches} has an all-zero attention map, "
                       f"which cannot be normalised to a distribution")
