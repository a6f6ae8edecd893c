"""MoCo for video clips (He et al. 2020, v1-style queue), as configured by FAME; optional CO2 term.

``encoder_q`` is trained by SGD, ``encoder_k`` follows it as an exponential moving average, and the
``queue`` holds the ``K`` most recent keys as negatives. The loss is symmetrised as in FAME's
builder: both clips serve once as query and once as key; the key encoder is updated once per step
and both directions' keys are enqueued. Under DDP the key encoder sees a batch shuffled across
processes (shuffled BatchNorm), so a query cannot find its key through batch statistics.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssl_video.co2 import co2_consistency
from ssl_video.models import build_backbone
from vos.infra.errors import UserError


class VideoEncoder(nn.Module):
    """Backbone + projection head: (B, C, T, H, W) -> (B, dim) (not normalised).

    The head is one linear layer, or with ``mlp`` a hidden layer of the backbone's width + ReLU first
    (FAME uses mlp for R(2+1)D, a linear head for I3D).
    """

    def __init__(self, arch: str, dim: int = 128, mlp: bool = False):
        super().__init__()
        self.backbone = build_backbone(arch)
        width = self.backbone.feature_dim
        if mlp:
            self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, dim))
        else:
            self.head = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # B dim


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on each of W processes -> (W*B, ...) in rank order (no gradient)."""
    if not _distributed():
        return x
    gathered = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, x.contiguous())
    return torch.cat(gathered, dim=0)


class MoCo(nn.Module):
    def __init__(self, arch: str, dim: int = 128, K: int = 2048, m: float = 0.999, T: float = 0.1,
                 mlp: bool = False, co2_alpha: float = 0.0, co2_t: float = 0.05):
        """arch: backbone name; dim: embedding size; K: queue length; m: key-encoder momentum;
        T: InfoNCE temperature; co2_alpha: weight of the CO2 term (0 = off); co2_t: its temperature."""
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.co2_alpha, self.co2_t = co2_alpha, co2_t
        self.encoder_q = VideoEncoder(arch, dim, mlp)
        self.encoder_k = VideoEncoder(arch, dim, mlp)
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.copy_(param_q.data)
            param_k.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))  # dim K
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.mul_(self.m).add_(param_q.data, alpha=1.0 - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        """Write the keys of all processes (N, dim) over the oldest queue entries (wrapping around)."""
        keys = concat_all_gather(keys)
        n = keys.shape[0]
        if n > self.K:
            raise UserError(f"{n} keys per step (2 x batch x processes) do not fit a queue of --moco-k {self.K}; raise --moco-k")
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=keys.device)) % self.K
        self.queue[:, idx] = keys.T
        self.queue_ptr[0] = (ptr + n) % self.K

    @torch.no_grad()
    def _batch_shuffle_ddp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of a random permutation of all processes' clips, and the index to undo it."""
        x_gather = concat_all_gather(x)                     # W*B C T H W
        batch_all = x_gather.shape[0]
        world, rank = dist.get_world_size(), dist.get_rank()
        idx_shuffle = torch.randperm(batch_all, device=x.device)
        dist.broadcast(idx_shuffle, src=0)                  # every process uses rank 0's permutation
        idx_unshuffle = torch.argsort(idx_shuffle)
        idx_this = idx_shuffle.view(world, -1)[rank]
        return x_gather[idx_this], idx_unshuffle

    @torch.no_grad()
    def _batch_unshuffle_ddp(self, x: torch.Tensor, idx_unshuffle: torch.Tensor) -> torch.Tensor:
        x_gather = concat_all_gather(x)                     # W*B dim
        world, rank = dist.get_world_size(), dist.get_rank()
        return x_gather[idx_unshuffle.view(world, -1)[rank]]

    @torch.no_grad()
    def _keys(self, clips: torch.Tensor) -> torch.Tensor:
        """Normalised key embeddings (B, dim) of clips (B, C, T, H, W) from the momentum encoder."""
        if _distributed():
            clips, idx_unshuffle = self._batch_shuffle_ddp(clips)
            return self._batch_unshuffle_ddp(F.normalize(self.encoder_k(clips), dim=1), idx_unshuffle)
        # One process has one BatchNorm group: shuffling within it would change nothing.
        return F.normalize(self.encoder_k(clips), dim=1)

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """InfoNCE, CO2 term and top-1 hit rate of query q (B, dim) against key k (B, dim) and the queue."""
        l_pos = (q * k).sum(dim=1, keepdim=True)            # B 1
        l_neg = q @ self.queue.clone().detach()             # B K
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T  # B 1+K, the positive at index 0
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        nce = F.cross_entropy(logits, labels)
        co2 = co2_consistency(q, k, self.queue.clone().detach(), self.co2_t) if self.co2_alpha > 0 else nce.new_zeros(())
        hits = (logits.argmax(dim=1) == 0).float().mean()
        return nce, co2, hits

    def forward(self, clip_1: torch.Tensor, clip_2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """clip_1, clip_2: two views (B, C, T, H, W), normalised. Returns (loss, detached stats).

        loss = mean over both directions of [InfoNCE + co2_alpha * CO2].
        """
        q1 = F.normalize(self.encoder_q(clip_1), dim=1)     # B dim
        q2 = F.normalize(self.encoder_q(clip_2), dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            k1, k2 = self._keys(clip_1), self._keys(clip_2)
        nce_a, co2_a, hits_a = self._contrast(q1, k2)
        nce_b, co2_b, hits_b = self._contrast(q2, k1)
        nce, co2 = (nce_a + nce_b) / 2, (co2_a + co2_b) / 2
        loss = nce + self.co2_alpha * co2
        self._dequeue_and_enqueue(torch.cat([k1, k2], dim=0))
        stats = {"loss": loss.detach(), "loss_nce": nce.detach(), "loss_co2": co2.detach(),
                 "acc_pos": ((hits_a + hits_b) / 2).detach()}
        return loss, stats
