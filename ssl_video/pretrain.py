"""Self-supervised pretraining: MoCo (+ FAME on the query view, + CO2), dino ``main_dino.py`` style.

One epoch = one pass over the training videos, two clips per video. SGD with a per-step cosine
schedule. ``DIR/last.pt`` is written atomically at the end of every epoch (model with queue,
optimizer, scheduler, epoch/step, every process's RNG states, config); ``resume=True`` continues
from it exactly. Under torchrun each process loads its shard of the videos (DistributedSampler);
``batch_size`` is per process. A non-finite loss stops the run with a UserError and leaves the last
good checkpoint in place.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ssl_video.checkpoint import gather_rng_states, restore_training_state, seed_everything
from ssl_video.config import PretrainConfig
from ssl_video.data.clips import PretrainClips, check_color_options, check_videos, normalize_clips
from ssl_video.data.splits import load_items
from ssl_video.fame import fame_merge
from ssl_video.moco import MoCo
from vos.infra.config import config_to_dict
from vos.infra.distributed import DistContext, all_reduce_sum, barrier, cleanup, init_distributed
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_torch_save, atomic_write_text
from vos.infra.outputs import RUN_CHECKPOINT, remove_stale_temporaries, run_checkpoint, write_marker
from vos.infra.progress import progress_bar
from vos.infra.training_log import TrainingLog

COMMAND = "ssl-video pretrain"  # the marker of its run folders


def build_model(cfg: PretrainConfig) -> MoCo:
    return MoCo(cfg.arch, dim=cfg.moco_dim, K=cfg.moco_k, m=cfg.moco_m, T=cfg.moco_t, mlp=cfg.mlp,
                co2_alpha=cfg.co2, co2_t=cfg.co2_t)


def build_dataset(cfg: PretrainConfig) -> Dataset:
    """Two-clip dataset over the training videos of ``cfg.dataset`` (labels unused)."""
    if cfg.data_root is None:
        raise UserError("no --data-root given: pass the folder holding the videos")
    items, _ = load_items(cfg.dataset, cfg.data_root, cfg.split_dir, cfg.split, "train")
    return PretrainClips(items, cfg.frames, cfg.frame_stride, cfg.crop, cfg.color_jitter, cfg.grayscale)


def make_views(clip_q: torch.Tensor, clip_k: torch.Tensor, cfg: PretrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """FAME on the query view (both with ``fame_both``), then Kinetics normalisation.

    clip_q, clip_k: (B, C, T, H, W) in [0, 1] -> normalised (B, C, T, H, W).
    """
    if cfg.fame:
        clip_q, _ = fame_merge(clip_q, cfg.beta)
        if cfg.fame_both:
            clip_k, _ = fame_merge(clip_k, cfg.beta)
    return normalize_clips(clip_q), normalize_clips(clip_k)


def check_config(cfg: PretrainConfig, world_size: int) -> None:
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise UserError(f"--epochs and --batch-size must be positive (got {cfg.epochs}, {cfg.batch_size})")
    if cfg.fame and cfg.batch_size < 2:
        raise UserError("--fame takes backgrounds from other videos of the batch: use --batch-size 2 or more")
    if not 0.0 < cfg.beta <= 1.0:
        raise UserError(f"--beta is the foreground ratio, in (0, 1]; got {cfg.beta}")
    keys_per_step = 2 * cfg.batch_size * world_size
    if cfg.moco_k < keys_per_step:
        raise UserError(f"--moco-k {cfg.moco_k} is smaller than the {keys_per_step} keys enqueued per step "
                       "(2 x batch size x processes); raise --moco-k")
    check_color_options(cfg.color_jitter, cfg.grayscale)
    if cfg.co2 < 0 or cfg.co2_t <= 0 or cfg.moco_t <= 0:
        raise UserError("--co2 must be >= 0 and the temperatures --moco-t, --co2-t > 0")


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, clip_q: torch.Tensor,
               clip_k: torch.Tensor, cfg: PretrainConfig, ctx: DistContext) -> dict[str, float]:
    """One SGD step on a batch of clip pairs (B, C, T, H, W) in [0, 1]; returns the step's scalars.

    Raises FloatingPointError (before touching the weights) when the loss is not finite on any process.
    """
    view_q, view_k = make_views(clip_q.to(ctx.device), clip_k.to(ctx.device), cfg)
    loss, stats = model(view_q, view_k)
    # every process must take the same decision, so the check uses the sum over processes
    if not math.isfinite(float(all_reduce_sum(loss.detach().reshape(1), ctx))):
        raise FloatingPointError(float(loss.detach()))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {name: float(value) for name, value in stats.items()}


def cosine_lr_lambda(total_steps: int):
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def _save(path: Path, moco: MoCo, optimizer, scheduler, epoch: int, step: int, cfg: PretrainConfig,
          ctx: DistContext) -> None:
    rng = gather_rng_states(ctx)  # collective: every process takes part
    if ctx.is_main:
        atomic_torch_save({"kind": "moco_pretrain", "model": moco.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "rng": rng,
                           "config": config_to_dict(cfg)}, path)
    barrier(ctx)


def pretrain(cfg: PretrainConfig, out_dir: str | Path, resume: bool = False,
             dataset: Dataset | None = None) -> dict:
    """Pretrain MoCo on ``dataset`` (default: built from ``cfg``), writing ``out_dir/last.pt`` and logs.

    ``dataset`` yields pairs of clips (C, T, H, W) in [0, 1]. Returns a summary
    ``{"epochs", "steps", "loss", "checkpoint", "model"}`` (loss = mean of the last epoch; model = the
    trained MoCo module of this process). Works the same in a single process and under torchrun
    (one process per device, gloo on CPU).
    """
    ctx = init_distributed()
    try:
        return _pretrain(cfg, Path(out_dir), resume, dataset, ctx)
    finally:
        cleanup(ctx)


def _pretrain(cfg: PretrainConfig, out_dir: Path, resume: bool, dataset: Dataset | None, ctx: DistContext) -> dict:
    check_config(cfg, ctx.world_size)
    resume_from = run_checkpoint(out_dir, COMMAND, resume)  # checks only; nothing is written yet
    if dataset is None:  # every video opened before anything is written or trained; every process
        dataset = build_dataset(cfg)  # checks them all, so that all stop alike
        check_videos(dataset.items, cfg.workers, report=ctx.is_main)
    seed_everything(cfg.seed)  # identical initial weights in every process
    if len(dataset) < cfg.batch_size * ctx.world_size:
        raise UserError(f"{len(dataset)} training videos are fewer than one batch "
                       f"({cfg.batch_size} x {ctx.world_size} processes); lower --batch-size")
    moco = build_model(cfg).to(ctx.device)
    model = DistributedDataParallel(moco) if ctx.enabled else moco
    optimizer = torch.optim.SGD([p for p in moco.parameters() if p.requires_grad], lr=cfg.lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // cfg.batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lr_lambda(cfg.epochs * steps_per_epoch))

    start_epoch, step = 0, 0
    if resume_from is not None:
        start_epoch, step = restore_training_state(resume_from, config_to_dict(cfg), moco, optimizer, scheduler, ctx)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_marker(out_dir, COMMAND)
        remove_stale_temporaries(out_dir / RUN_CHECKPOINT)  # left by a process killed while saving
        atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    log = TrainingLog(out_dir, start_step=step, enabled=ctx.is_main)
    last_path = out_dir / RUN_CHECKPOINT
    epoch_loss = float("nan")
    saved_epoch = start_epoch
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        # the loader's own generator seeds its workers: a function of (seed, epoch, rank), not of
        # how many random numbers were drawn before, so a resumed epoch loads the same clips
        loader_gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + ctx.rank)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True, generator=loader_gen, persistent_workers=False)
        model.train()
        losses = []
        bar = progress_bar(loader, desc=f"pretrain epoch {epoch + 1}/{cfg.epochs}", disable=not ctx.is_main, leave=False)
        for clip_q, clip_k in bar:  # B C T H W each
            lr = optimizer.param_groups[0]["lr"]
            try:
                stats = train_step(model, optimizer, clip_q, clip_k, cfg, ctx)
            except FloatingPointError as exc:
                kept = (f"the last good checkpoint {last_path} (epoch {saved_epoch}) is kept" if saved_epoch
                        else "no checkpoint was written yet")
                raise UserError(f"loss became {exc.args[0]} at epoch {epoch + 1}, step {step + 1}; stopped, {kept}; "
                               "lower --lr or check the input videos") from None
            scheduler.step()
            step += 1
            losses.append(stats["loss"])
            log.log(step, epoch=epoch + 1, lr=lr, **stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['acc_pos']:.2f}", refresh=False)
        epoch_loss = sum(losses) / max(len(losses), 1)
        _save(last_path, moco, optimizer, scheduler, epoch + 1, step, cfg, ctx)
        saved_epoch = epoch + 1
        if ctx.is_main:
            print(f"pretrain: epoch {epoch + 1}/{cfg.epochs} loss {epoch_loss:.4f}", flush=True)
    log.close()
    summary = {"epochs": cfg.epochs, "steps": step, "loss": epoch_loss, "checkpoint": str(last_path), "model": moco}
    if ctx.is_main:
        print(f"pretrain: done, {cfg.epochs} epochs ({step} steps, {time.time() - t0:.0f} s this run), "
              f"last-epoch loss {epoch_loss:.4f}, checkpoint {last_path}", flush=True)
    return summary

