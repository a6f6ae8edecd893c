"""The training loop of the spatio-temporal block (dino ``main_dino.py`` style, iteration based).

Every iteration each process draws ``batch_size`` clips, runs the frozen backbone (or reads the
feature cache), feeds the frame-major token sequence ``[cls_0, keys_0, cls_1, keys_1, …]`` through
the block and optimises ``w_sem * semantic + w_mot * motion`` (``vos.train.losses``). DDP averages
the gradients over processes (torchrun, gloo on CPU / nccl on GPU).

Exact resumption: the run's randomness lives in two per-process generators (the global torch one,
used by dropout, and a data generator for clip sampling, augmentation and query positions) whose
states are checkpointed with the block, the optimiser and the scheduler. A resumed run therefore
replays the same iterations as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from vos.infra.checkpoints import (check_resume_settings, check_training_state, load_checkpoint_dict,
                                   torch_rng_state_spec)
from vos.infra.config import config_to_dict
from vos.infra.distributed import DistContext, all_gather_objects, all_reduce_sum, barrier, cleanup, init_distributed
from vos.infra.errors import UserError
from vos.infra.fileio import atomic_torch_save, atomic_write_text
from vos.infra.outputs import RUN_CHECKPOINT, remove_stale_temporaries, run_checkpoint, write_marker
from vos.infra.progress import progress_bar
from vos.infra.schema import Dict, Int, ListOf, Plain, check
from vos.infra.training_log import TrainingLog
from vos.models.backbone import build_backbone, model_input_size, weights_tag
from vos.models.block import SpatioTemporalBlock, block_checkpoint, check_block_file, resolve_block
from vos.segment.config import check_resolution
from vos.train.config import RESUMABLE_CHANGES, TrainConfig
from vos.train.data import ClipSampler, FeatureCache, TrainingVideos, check_clip_fits, hash_seed
from vos.train.losses import motion_consistency_loss, semantic_consistency_loss, strip_cls

CONFIG_NAME = "config.yaml"
COMMAND = "vos train"  # the marker of its run folders
LOSS_NAMES = ("loss", "semantic", "motion")
# What a run checkpoint holds besides the block (vos.models.block checks that part); the optimiser and
# scheduler states are checked against the ones this run builds (check_training_state).
RUN_STATE = Dict({"step": Int(min=0), "config": Plain(), "optimizer": Dict({}), "scheduler": Dict({}),
                  "rng": ListOf(Dict({"torch": torch_rng_state_spec(), "data": torch_rng_state_spec()}), min_len=1)})
RUN_DAMAGED = "the checkpoint is damaged; restore it from a copy, or start a new --out"


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    iterations: int  # the iteration the checkpoint holds
    losses: dict[str, float]  # process-averaged losses of the last iteration
    seconds: float
    is_main: bool  # the process that prints (rank 0)


def init_block_weights(block: nn.Module) -> None:
    """ViT/DINO initialisation: truncated normal (std 0.02) linear weights, zero biases, unit LayerNorms."""
    for m in block.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_optimizer(block: nn.Module, cfg) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (biases and norm parameters are not decayed)."""
    decay = [p for p in block.parameters() if p.ndim >= 2]
    no_decay = [p for p in block.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))


def lr_factor(step: int, iterations: int, warmup: int, lr: float, min_lr: float) -> float:
    """Multiplier of ``lr`` after ``step`` scheduler steps: linear warm-up, then cosine decay to ``min_lr``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, iterations - warmup))
    return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / lr


def training_losses(block: nn.Module, tokens: torch.Tensor, query_idx: torch.Tensor, cfg) -> dict[str, torch.Tensor]:
    """tokens (B, T, 1+P, C) of CLS + patch keys, query_idx (n,) -> {"loss", "semantic", "motion"} scalars."""
    B, T, M, C = tokens.shape
    out, attn = block(tokens.reshape(B, T * M, C))  # B T*(1+P) C, B T*(1+P) T*(1+P)
    attn = strip_cls(attn, T)  # B T*P T*P
    z = out.view(B, T, M, C)[:, :, 1:].reshape(B, T * (M - 1), C)  # B T*P C
    sem_cfg, mot_cfg = cfg.semantic, cfg.motion
    semantic = semantic_consistency_loss(attn, z, query_idx, T, sem_cfg.positives, sem_cfg.negatives,
                                         sem_cfg.positive_margin, sem_cfg.negative_margin)
    motion = motion_consistency_loss(attn, query_idx, T, mot_cfg.positives, mot_cfg.negatives, mot_cfg.margin)
    total = sem_cfg.weight * semantic + mot_cfg.weight * motion
    return {"loss": total, "semantic": semantic, "motion": motion}


def _validate(cfg: TrainConfig) -> None:
    if not cfg.data:
        raise UserError("no training data given; pass --data DIR (frame folders, videos or a DAVIS root)")
    if not cfg.out:
        raise UserError("no output folder given; pass --out DIR")
    for name in ("frames", "gap", "batch_size", "iterations", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise UserError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    check_resolution(tuple(cfg.resolution))
    if cfg.loss.queries < 1:
        raise UserError(f"loss.queries must be >= 1, got {cfg.loss.queries}")
    if not 0 < cfg.optim.min_lr <= cfg.optim.lr:
        raise UserError(f"need 0 < optim.min_lr <= optim.lr, got min_lr={cfg.optim.min_lr}, lr={cfg.optim.lr}")


def _gather_rng(data_gen: torch.Generator, ctx: DistContext) -> list[dict]:
    """Every process's RNG states, indexed by rank (collective: all processes call it)."""
    return all_gather_objects({"torch": torch.get_rng_state(), "data": data_gen.get_state()}, ctx)


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Train the block per ``cfg``; with ``resume`` continue the run whose checkpoint is in ``cfg.out``."""
    _validate(cfg)
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, resume, ctx)
    finally:
        cleanup(ctx)


def _load_initial_block(block: SpatioTemporalBlock, cfg: TrainConfig) -> None:
    """Copy the weights of the --init-block checkpoint (either format) into ``block``."""
    start, _, _ = resolve_block(cfg.init_block, cfg.backbone, cfg.weights, flag="--init-block")
    mine = (block.dim, block.num_heads, float(block.mlp_ratio))
    theirs = (start.dim, start.num_heads, float(start.mlp_ratio))
    if mine != theirs:
        raise UserError(f"{cfg.init_block}: block (dim, heads, MLP ratio) {theirs} differs from this run's {mine}; "
                       "set block.num_heads / block.mlp_ratio to the checkpoint's")
    block.load_state_dict(start.state_dict)


def _train(cfg: TrainConfig, resume: bool, ctx: DistContext) -> TrainResult:
    out = Path(cfg.out)
    ckpt_path = out / RUN_CHECKPOINT
    ckpt = None
    if run_checkpoint(out, COMMAND, resume) is not None:
        ckpt = load_checkpoint_dict(ckpt_path, "a checkpoint of `vos train` (start a new --out)")
        if "optimizer" not in ckpt:
            raise UserError(f"{ckpt_path}: holds a block but no training state; it cannot be resumed")
        check(ckpt, RUN_STATE, ckpt_path, RUN_DAMAGED)
        saved_block = check_block_file(ckpt_path, ckpt)
        check_resume_settings(ckpt["config"], config_to_dict(cfg), ckpt_path, RESUMABLE_CHANGES)
        if len(ckpt["rng"]) != ctx.world_size:
            raise UserError(f"{ckpt_path}: the run used {len(ckpt['rng'])} process(es), this one has "
                            f"{ctx.world_size}; resume with the same number of processes")

    backbone = build_backbone(cfg.backbone, cfg.weights).to(ctx.device)
    size = model_input_size(tuple(cfg.resolution), backbone.patch_size)
    grid = (size[0] // backbone.patch_size, size[1] // backbone.patch_size)
    check_clip_fits(grid, cfg.loss)
    patches = grid[0] * grid[1]
    videos = TrainingVideos(cfg.data, cfg.frames)
    cache = None
    if cfg.cache_features:
        cache = FeatureCache(cfg.cache_features, videos, backbone, cfg.backbone, weights_tag(cfg.weights), size,
                             cfg.cache_variants, cfg.augment, cfg.seed, ctx)
    sampler = ClipSampler(videos, backbone, size, cfg.frames, cfg.gap, cfg.augment, cache)

    torch.manual_seed(cfg.seed)  # identical initial block in every process
    block = SpatioTemporalBlock(backbone.dim, cfg.block.num_heads, cfg.block.mlp_ratio,
                                proj_drop=cfg.block.proj_drop, attn_drop=cfg.block.attn_drop)
    init_block_weights(block)
    if ckpt is None and cfg.init_block:
        _load_initial_block(block, cfg)
    block.to(ctx.device).train()
    optimizer = build_optimizer(block, cfg.optim)
    o = cfg.optim
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.iterations, o.warmup_iterations, o.lr, o.min_lr))
    data_gen = torch.Generator()
    if ckpt is not None:
        check_training_state(ckpt, optimizer, scheduler, ckpt_path, RUN_DAMAGED)
        if (saved_block.dim, saved_block.num_heads, saved_block.mlp_ratio) != \
                (block.dim, block.num_heads, block.mlp_ratio):
            raise UserError(f"{ckpt_path}: its block ({saved_block.dim}, {saved_block.num_heads} heads, MLP ratio "
                           f"{saved_block.mlp_ratio}) is not the one of its settings; {RUN_DAMAGED}")
        block.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"][ctx.rank]["torch"])
        data_gen.set_state(ckpt["rng"][ctx.rank]["data"])
        start = int(ckpt["step"])
    else:
        torch.manual_seed(hash_seed(cfg.seed, ctx.rank, 0))  # dropout masks differ between processes
        data_gen.manual_seed(hash_seed(cfg.seed, ctx.rank, 1))
        start = 0
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        write_marker(out, COMMAND)
        remove_stale_temporaries(ckpt_path)  # left by a process killed while saving
        atomic_write_text(out / CONFIG_NAME, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    model = DistributedDataParallel(block) if ctx.enabled else block

    saved_step = start if ckpt is not None else None

    def save(step: int) -> None:
        nonlocal saved_step
        rng = _gather_rng(data_gen, ctx)
        if ctx.is_main:
            state = block_checkpoint(block, cfg.backbone, weights_tag(cfg.weights), step)
            state.update(step=step, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         rng=rng, config=config_to_dict(cfg))
            atomic_torch_save(state, ckpt_path)
        barrier(ctx)
        saved_step = step

    train_log = TrainingLog(out, start, ctx.is_main)
    t0 = time.perf_counter()
    last: dict[str, float] = {}
    step = start
    try:
        bar = progress_bar(range(start + 1, cfg.iterations + 1), initial=start, total=cfg.iterations,
                           desc="training", unit="it", disable=not ctx.is_main)
        for step in bar:
            tokens = sampler.batch(cfg.batch_size, data_gen).to(ctx.device)  # B T 1+P C
            query_idx = torch.randperm(patches, generator=data_gen)[: cfg.loss.queries].to(ctx.device)  # n
            losses = training_losses(model, tokens, query_idx, cfg.loss)
            values = torch.stack([losses[k].detach() for k in LOSS_NAMES]).cpu()
            values = all_reduce_sum(values, ctx) / ctx.world_size
            last = dict(zip(LOSS_NAMES, values.tolist()))
            if not all(math.isfinite(v) for v in last.values()):
                have = "none yet" if saved_step is None else f"{ckpt_path} (iteration {saved_step})"
                raise UserError(f"loss became non-finite at iteration {step} ("
                               + ", ".join(f"{k}={v}" for k, v in last.items())
                               + f"); stopped, last good checkpoint: {have}; lower optim.lr or check the data")
            lr = scheduler.get_last_lr()[0]
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            scheduler.step()
            if step % cfg.log_every == 0 or step == cfg.iterations:
                train_log.log(step, **last, lr=lr)
            bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
                save(step)
    finally:
        train_log.close()
    return TrainResult(checkpoint=ckpt_path, iterations=step, losses=last, seconds=time.perf_counter() - t0,
                       is_main=ctx.is_main)
