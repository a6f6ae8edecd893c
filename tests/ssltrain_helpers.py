"""In-memory clip datasets and tiny configs for the ssltrain tests (no video decoding)."""

import torch
from torch.utils.data import Dataset

from ssl_video.pretrain import PretrainConfig


class RandomClipPairs(Dataset):
    """Pairs of (3, T, S, S) clips in [0, 1]: a fixed per-video pattern plus noise drawn from the
    global torch RNG at load time (standing in for augmentation randomness). ``poison`` makes every
    clip NaN."""

    def __init__(self, n: int = 8, frames: int = 4, size: int = 16, poison: bool = False):
        g = torch.Generator().manual_seed(123)
        self.base = torch.rand(n, 3, frames, size, size, generator=g)
        self.poison = poison

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        noise = 0.1 * torch.rand(2, *self.base.shape[1:])
        q, k = ((self.base[i] + noise) / 1.1).unbind(0)
        if self.poison:
            q = torch.full_like(q, float("nan"))
        return q, k


def tiny_pretrain_config(**overrides) -> PretrainConfig:
    values = dict(arch="r3d_tiny", frames=4, crop=16, batch_size=4, epochs=2, moco_k=32, moco_dim=16,
                  lr=0.05, workers=0, seed=7, mlp=True)
    values.update(overrides)
    return PretrainConfig(**values)


def _ddp_worker(out_dir: str) -> None:
    """Run under torchrun: a 1-epoch tiny pretrain, then each rank saves its MoCo state to
    ``out_dir/rank<r>.pt`` (and the initial query encoder to ``init.pt``) for the parent test."""
    import os
    from pathlib import Path

    from ssl_video.pretrain import build_model, pretrain

    cfg = tiny_pretrain_config(epochs=1, fame=True, co2=0.5)
    rank = int(os.environ["RANK"])
    if rank == 0:
        torch.manual_seed(cfg.seed)
        torch.save(build_model(cfg).state_dict(), Path(out_dir) / "init.pt")
    result = pretrain(cfg, Path(out_dir) / "run", dataset=RandomClipPairs(n=16))
    torch.save(result["model"].state_dict(), Path(out_dir) / f"rank{rank}.pt")


if __name__ == "__main__":
    import sys

    _ddp_worker(sys.argv[1])
