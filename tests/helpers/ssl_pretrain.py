"""In-memory clip datasets and tiny configs for the ssl_video pretraining tests (no video decoding);
run as a script under torchrun by the two-process tests."""

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


def _ddp_finetune_worker(data_root: str, out_dir: str) -> int:
    """Run under torchrun: ``ssl-video finetune`` (random r3d_tiny, 2 epochs) through the CLI; each
    rank saves the model it tests to ``out_dir/rank<r>.pt`` and how many test videos it scored to
    ``out_dir/tested<r>.txt`` for the parent test."""
    import os
    from pathlib import Path

    import ssl_video.finetune as finetune_mod
    from ssl_video.cli import main

    real_evaluate, real_clip_outputs = finetune_mod.evaluate, finetune_mod.clip_outputs
    rank = int(os.environ["RANK"])

    def evaluate_and_save(model, *args, **kwargs):
        torch.save(model.state_dict(), Path(out_dir) / f"rank{rank}.pt")
        return real_evaluate(model, *args, **kwargs)

    def clip_outputs_and_count(*args, **kwargs):
        logits, labels = real_clip_outputs(*args, **kwargs)
        (Path(out_dir) / f"tested{rank}.txt").write_text(str(len(labels)))
        return logits, labels

    finetune_mod.evaluate, finetune_mod.clip_outputs = evaluate_and_save, clip_outputs_and_count
    return main(["finetune", "--data-root", data_root, "--split-dir", str(Path(data_root) / "splits"),
                 "--frames", "4", "--frame-stride", "1", "--crop", "32", "--workers", "0", "--arch", "r3d_tiny",
                 "--epochs", "2", "--batch-size", "2", "--lr", "0.05", "--clips-per-video", "2",
                 "--out", str(Path(out_dir) / "run"), "--json", str(Path(out_dir) / "results.json")])


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "finetune":
        sys.exit(_ddp_finetune_worker(sys.argv[2], sys.argv[3]))
    _ddp_worker(sys.argv[1])
