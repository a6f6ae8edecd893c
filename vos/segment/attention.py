"""The attention of every patch over the key frames' patches: which frames are key frames, the
head-averaged softmax attention over their K patches one clustering window at a time (never the
(T·N)×(T·N) matrix, nor the (T, N, K) tensor), and the reuse of a window's attention between the
clustering's two passes."""

from __future__ import annotations

import math
import threading
from typing import Callable

import torch

from vos.infra.errors import UserError


def key_frame_indices(num_frames: int, key_every: int, rule: str = "every") -> list[int]:
    """Frames whose patches are the keys. Rule "every": 0, key_every, 2·key_every, ... < num_frames.
    Rule "release" (SSL-UVOS): ``arange(num_frames // key_every) * key_every``, which leaves out the
    last partial interval; at least frame 0 (the release would have no keys below key_every frames)."""
    if rule == "every":
        return list(range(0, num_frames, key_every))
    if rule == "release":
        return [i * key_every for i in range(max(1, num_frames // key_every))]
    raise UserError(f"unknown key frame rule {rule!r}; choose 'every' or 'release'")


# Query rows per block of attention_over_keys: a block's logits (rows x K floats, 3 MB at K = 3000)
# stay in cache through the softmax and the head sum.
ATTENTION_BLOCK_ROWS = 256
# |logit| (in base 2) up to which 2**logit needs no max shift: far from float32 over- and underflow
# (2**±126) even summed over every key, so the unshifted softmax loses no precision.
UNSHIFTED_LOGIT_BOUND = 64.0


@torch.no_grad()
def attention_over_keys(queries: torch.Tensor, keys: torch.Tensor,
                        block_rows: int = ATTENTION_BLOCK_ROWS) -> torch.Tensor:
    """Head-averaged softmax attention of queries (w, heads, N, hd) over keys (heads, K, hd) -> (w, N, K).

    Queries are pre-scaled. Blocks of ``block_rows`` query rows go through all heads
    while their logits are still in cache, instead of whole (w·N)×K matrices per head, which go to
    memory and back three times per head. The softmax is taken in base 2 on queries scaled by
    log2(e) (the same function): torch's exp2 is cheaper than its exp on CPU. Timings of both:
    docs/benchmarks.md#attention-over-key-frames. Rows whose logits are bounded by
    ``UNSHIFTED_LOGIT_BOUND`` (Cauchy-Schwarz, the usual case) skip the max shift.
    """
    w, heads, N, head_dim = queries.shape
    rows = (queries * math.log2(math.e)).permute(1, 0, 2, 3).reshape(heads, w * N, head_dim)  # heads (w·N) hd
    logit_bounds = rows.norm(dim=-1) * keys.norm(dim=-1).amax(dim=-1, keepdim=True)  # heads (w·N)
    attn = torch.zeros(w * N, keys.shape[1], dtype=queries.dtype, device=queries.device)
    logits = torch.empty(min(block_rows, w * N), keys.shape[1], dtype=queries.dtype, device=queries.device)
    for r0 in range(0, w * N, block_rows):
        block = attn[r0:r0 + block_rows]
        block_logits = logits[:block.shape[0]]  # rows K
        for h in range(heads):
            torch.matmul(rows[h, r0:r0 + block.shape[0]], keys[h].T, out=block_logits)
            if logit_bounds[h, r0:r0 + block.shape[0]].max() > UNSHIFTED_LOGIT_BOUND:
                block_logits.sub_(block_logits.amax(dim=1, keepdim=True))
            block_logits.exp2_()
            # softmax rows, and the mean over heads, in one pass
            block.addcmul_(block_logits, block_logits.sum(dim=1, keepdim=True).mul_(heads).reciprocal_())
    return attn.view(w, N, -1)


def reuse_first_pass(compute: Callable[[int, int], torch.Tensor], budget_bytes: int) -> Callable[[int, int], torch.Tensor]:
    """Wrap a window attention function so that a window's second call returns its first result.

    :func:`vos.cluster.cluster_streaming` asks for every window twice (clustering, then
    assignment). Results of first calls are kept while their total stays within ``budget_bytes``;
    a kept result is handed out (and released) on the second call, others are recomputed. Memory
    therefore stays linear in T plus at most the budget. Thread-safe; ``compute`` runs unlocked.
    """
    kept: dict[tuple[int, int], torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    used = 0
    lock = threading.Lock()  # windows may be asked for from several worker threads at once

    def window_attention(t0: int, t1: int) -> torch.Tensor:
        nonlocal used
        with lock:
            if (t0, t1) in kept:
                attention = kept.pop((t0, t1))
                used -= attention.nbytes
                return attention
        attention = compute(t0, t1)
        with lock:
            if (t0, t1) not in seen and used + attention.nbytes <= budget_bytes:  # only first results
                kept[(t0, t1)] = attention
                used += attention.nbytes
            seen.add((t0, t1))
        return attention

    return window_attention
