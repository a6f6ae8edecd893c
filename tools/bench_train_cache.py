"""Time one `vos train` iteration with the backbone run on the fly vs. read from the feature cache.

    python tools/bench_train_cache.py --data DAVIS_ROOT --config configs/vos/train_reference.yaml \
        --weights random --iterations 10

Prints seconds per iteration (median after one warm-up iteration) for both data paths, split
into data (frames -> tokens) and block (forward + losses + backward + AdamW step), and the one-off
cost of filling the cache.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch

from vos.infra.config import load_config
from vos.infra.distributed import DistContext
from vos.models.backbone import build_backbone, model_input_size, weights_tag
from vos.models.block import SpatioTemporalBlock
from vos.train.config import TrainConfig
from vos.train.data import ClipSampler, FeatureCache, TrainingVideos
from vos.train.trainer import build_optimizer, init_block_weights, training_losses


def time_iterations(sampler: ClipSampler, block, optimizer, cfg: TrainConfig, patches: int, n: int) -> tuple[float, float]:
    """Median (data seconds, block seconds) per iteration over ``n`` iterations after one warm-up."""
    gen = torch.Generator().manual_seed(0)
    data_t, block_t = [], []
    for i in range(n + 1):
        t0 = time.perf_counter()
        tokens = sampler.batch(cfg.batch_size, gen)
        t1 = time.perf_counter()
        losses = training_losses(block, tokens, torch.randperm(patches, generator=gen)[: cfg.loss.queries], cfg.loss)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        t2 = time.perf_counter()
        if i:
            data_t.append(t1 - t0)
            block_t.append(t2 - t1)
    return statistics.median(data_t), statistics.median(block_t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--config", default=None, help="a vos train YAML config (backbone, resolution, losses)")
    p.add_argument("--weights", default="random")
    p.add_argument("--iterations", type=int, default=10)
    args = p.parse_args()
    cfg = load_config(TrainConfig, args.config, {"data": args.data, "weights": args.weights})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = build_backbone(cfg.backbone, cfg.weights)
    size = model_input_size(tuple(cfg.resolution), backbone.patch_size)
    patches = (size[0] // backbone.patch_size) * (size[1] // backbone.patch_size)
    videos = TrainingVideos(cfg.data, cfg.frames)
    block = SpatioTemporalBlock(backbone.dim, cfg.block.num_heads, cfg.block.mlp_ratio,
                                cfg.block.proj_drop, cfg.block.attn_drop)
    init_block_weights(block)
    optimizer = build_optimizer(block, cfg.optim)
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    frames = sum(v.num_frames for v in videos.videos)
    print(f"{cfg.backbone} ({cfg.weights}) at {size[0]}x{size[1]}, {cfg.frames} frames/clip, "
          f"{len(videos)} videos / {frames} frames, torch threads {torch.get_num_threads()}")
    on_the_fly = ClipSampler(videos, backbone, size, cfg.frames, cfg.gap, cfg.augment)
    d, b = time_iterations(on_the_fly, block, optimizer, cfg, patches, args.iterations)
    print(f"backbone on the fly: {d + b:.3f} s/it (data {d:.3f} + block {b:.3f})")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = FeatureCache(tmp, videos, backbone, cfg.backbone, weights_tag(cfg.weights), size, 1, cfg.augment, 0, ctx)
        fill = time.perf_counter() - t0
        cached = ClipSampler(videos, backbone, size, cfg.frames, cfg.gap, cfg.augment, cache)
        dc, bc = time_iterations(cached, block, optimizer, cfg, patches, args.iterations)
    print(f"feature cache:       {dc + bc:.3f} s/it (data {dc:.3f} + block {bc:.3f}); filling it took {fill:.1f} s "
          f"({fill / frames * 1000:.0f} ms/frame)")
    print(f"speed-up per iteration: {(d + b) / (dc + bc):.2f}x; data path alone: {d / dc:.0f}x")


if __name__ == "__main__":
    main()
