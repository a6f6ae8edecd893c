"""CO2 consistency regulariser (Wei et al., ICLR 2021), as a pure function.

The query ``q`` and its positive key ``k`` each define a distribution over the same candidates:
``p_q = softmax([q·k, q·n_1, ..., q·n_K] / t)`` and ``p_k = softmax([k·q, k·n_1, ..., k·n_K] / t)``
with the negatives ``n_j`` taken from the MoCo queue. The positive similarity sits at index 0 of
both (as in lightly's ``CO2Regularizer``; the paper text was not available to check whether it
uses the negatives only). The loss is the symmetric KL ``½ [KL(p_q‖p_k) + KL(p_k‖p_q)]``, averaged
over the batch. In MoCo the key carries no gradient, so only the query side is pushed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def co2_consistency(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Symmetric KL between the query's and the key's similarity distributions.

    q, k: (B, D) L2-normalised; queue: (D, K) L2-normalised negatives. Returns a scalar.
    """
    positive = (q * k).sum(dim=1, keepdim=True)                          # B 1 (same for both sides)
    logits_q = torch.cat([positive, q @ queue], dim=1) / temperature    # B 1+K
    logits_k = torch.cat([positive, k @ queue], dim=1) / temperature    # B 1+K
    log_p_q = F.log_softmax(logits_q, dim=1)
    log_p_k = F.log_softmax(logits_k, dim=1)
    kl_qk = (log_p_q.exp() * (log_p_q - log_p_k)).sum(dim=1)            # KL(p_q || p_k)
    kl_kq = (log_p_k.exp() * (log_p_k - log_p_q)).sum(dim=1)            # KL(p_k || p_q)
    return 0.5 * (kl_qk + kl_kq).mean()
