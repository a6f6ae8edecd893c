"""Self-supervised losses of the spatio-temporal block (Betrayed by Attention, as the SSL-UVOS release
implements them), as small pure functions.

Shapes: ``B`` clips, ``T`` frames, ``P`` patches per frame (``h*w``), ``N = T*P`` patch tokens
ordered frame-major (token ``t*P + p`` is patch ``p`` of frame ``t``), ``n`` sampled query
positions (the same spatial positions in every frame, so ``T*n`` queries per clip).

Both losses rank keys by the block's attention; the ranking is not differentiated (top-k picks
indices), so the semantic loss trains the block through its output tokens and the motion loss
through the attention distributions of the picked keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# log(0) guard for attention probabilities: far below any softmax value that float32 represents
# in a row of a few thousand keys, so it only changes exact zeros (underflow).
LOG_EPS = 1e-30


def strip_cls(attn: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Attention over tokens ``[cls_0, patches_0, cls_1, patches_1, …]`` (B, T*(1+P), T*(1+P))
    -> the patch-to-patch part (B, T*P, T*P) (CLS rows and columns removed, rows not renormalised)."""
    B, M, _ = attn.shape
    per_frame = M // num_frames
    a = attn.view(B, num_frames, per_frame, num_frames, per_frame)[:, :, 1:, :, 1:]
    return a.reshape(B, num_frames * (per_frame - 1), num_frames * (per_frame - 1))


def query_rows(query_idx: torch.Tensor, num_frames: int, patches: int) -> torch.Tensor:
    """Token indices (T*n,) of the queries: position ``query_idx[j]`` in frame ``t`` at ``t*n + j``."""
    frames = torch.arange(num_frames, device=query_idx.device)
    return (frames[:, None] * patches + query_idx[None, :]).reshape(-1)


def top_bottom_keys(scores: torch.Tensor, num_top: int, num_bottom: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``num_top`` largest and ``num_bottom`` smallest scores along the last dim.

    scores (..., K) -> (top (..., num_top), bottom (..., num_bottom)), each sorted by score
    (top descending, bottom ascending). Ties resolve as ``torch.topk`` does.
    """
    top = scores.topk(num_top, dim=-1).indices
    bottom = scores.topk(num_bottom, dim=-1, largest=False).indices
    return top, bottom


def semantic_consistency_loss(attn: torch.Tensor, tokens: torch.Tensor, query_idx: torch.Tensor, num_frames: int,
                              num_positives: int = 30, num_negatives: int = 200,
                              positive_margin: float = 0.9, negative_margin: float = 0.1) -> torch.Tensor:
    """Hinge loss on the cosine similarity of block outputs, positives/negatives picked by attention.

    attn (B, N, N) patch attention, tokens (B, N, C) block outputs, query_idx (n,) positions.
    For every query and every key frame t' (own frame included), the ``num_positives`` keys of t'
    the query attends to most are positives and the ``num_negatives`` it attends to least are
    negatives:  L = mean ReLU(m_pos - cos(z_q, z_pos)) + mean ReLU(cos(z_q, z_neg) - m_neg).
    Returns a scalar.
    """
    B, N, C = tokens.shape
    P = N // num_frames
    rows = query_rows(query_idx, num_frames, P)  # Q = T*n
    z = F.normalize(tokens, dim=-1)  # B N C
    scores = attn[:, rows].detach().view(B, rows.numel(), num_frames, P)  # B Q T' P
    pos, neg = top_bottom_keys(scores, num_positives, num_negatives)  # B Q T' k
    offsets = (torch.arange(num_frames, device=attn.device) * P).view(1, 1, num_frames, 1)
    sim = torch.einsum("bqc,bnc->bqn", z[:, rows], z)  # B Q N  cosine similarity to every patch
    sim_pos = sim.gather(2, (pos + offsets).flatten(2))  # B Q T'*k_pos
    sim_neg = sim.gather(2, (neg + offsets).flatten(2))  # B Q T'*k_neg
    return F.relu(positive_margin - sim_pos).mean() + F.relu(sim_neg - negative_margin).mean()


def entropy_weights(dist: torch.Tensor) -> torch.Tensor:
    """Softmax over queries of the negative entropy: dist (B, G, n, N) rows summing to 1 -> (B, G, n).

    Low-entropy (confident) queries get the larger weights; each group ``G`` (a frame) normalises
    over its own ``n`` queries.
    """
    neg_entropy = (dist * dist.clamp_min(LOG_EPS).log()).sum(-1)  # B G n  = -H(p_q)
    return neg_entropy.softmax(dim=-1)


def motion_consistency_loss(attn: torch.Tensor, query_idx: torch.Tensor, num_frames: int,
                            num_positives: int = 10, num_negatives: int = 50, margin: float = 1.0) -> torch.Tensor:
    """Margin ranking of attention distributions with entropy normalisation.

    attn (B, N, N) patch attention, query_idx (n,). Every row is L1-normalised into a distribution
    p over all N keys. For a query q in frame t, its ``num_positives`` most-attended and
    ``num_negatives`` least-attended patches *of frame t* are positives and negatives, and with
    sim(q, x) = sum_c p_q(c) log p_x(c)  (p_q detached)
    every (negative, positive) pair costs ReLU(sim(q, neg) - sim(q, pos) + margin). Each query's
    mean pair cost is weighted by ``entropy_weights`` over the n queries of its frame; the loss is
    the mean over clips and frames of the weighted sums. Returns a scalar.
    """
    B, N, _ = attn.shape
    P = N // num_frames
    n = query_idx.numel()
    rows = query_rows(query_idx, num_frames, P)  # Q = T*n, frame-major
    dist = attn / attn.sum(-1, keepdim=True)  # B N N
    log_dist = dist.clamp_min(LOG_EPS).log()
    p_q = dist[:, rows].detach()  # B Q N
    own_frame = p_q.view(B, num_frames, n, num_frames, P).diagonal(dim1=1, dim2=3)  # B n P T
    own_frame = own_frame.permute(0, 3, 1, 2).reshape(B, rows.numel(), P)  # B Q P
    pos, neg = top_bottom_keys(own_frame, num_positives, num_negatives)  # B Q k
    frame_offset = (rows // P * P).view(1, -1, 1)  # keys of the query's own frame
    sim = torch.einsum("bqc,bnc->bqn", p_q, log_dist)  # B Q N  sum_c p_q(c) log p_x(c)
    sim_pos = sim.gather(2, pos + frame_offset)  # B Q k_pos
    sim_neg = sim.gather(2, neg + frame_offset)  # B Q k_neg
    pair_cost = F.relu(sim_neg[:, :, :, None] - sim_pos[:, :, None, :] + margin)  # B Q k_neg k_pos
    per_query = pair_cost.mean(dim=(2, 3)).view(B, num_frames, n)  # B T n
    weights = entropy_weights(p_q.view(B, num_frames, n, N))  # B T n
    return (weights * per_query).sum(-1).mean()
