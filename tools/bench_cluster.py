"""Time ``vos.cluster.hierarchical_cluster`` at the segmentation sizes (320x480, ViT-S/16).

N = 600 query patches per frame (20x30 grid), K = key_frames * 600 keys. The attention is random
but structured like real block attention: every patch belongs to one of a few moving vertical
bands ("objects"), and its map is a softmax over the keys that favours keys of its own object,
with Gaussian noise on the logits, so clusters exist but rows are never identical.

    OMP_NUM_THREADS=2 python tools/bench_cluster.py --frames 25 50 100

Prints one markdown table row per video length (generation time excluded): wall seconds and the
process CPU seconds (all threads), which are less sensitive to other jobs on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vos.cluster import hierarchical_cluster  # noqa: E402
from vos.memory import keep_freed_memory  # noqa: E402

GRID_H, GRID_W = 20, 30  # 320x480 / 16


def object_ids(num_frames: int, num_objects: int) -> torch.Tensor:
    """T (H*W) int64: patch -> object, as vertical bands that drift one column every 4 frames."""
    cols = torch.arange(GRID_W)
    frames = torch.arange(num_frames)[:, None]
    band = ((cols[None, :] + frames // 4) * num_objects // GRID_W) % num_objects  # T W
    return band[:, None, :].expand(num_frames, GRID_H, GRID_W).reshape(num_frames, -1)


def structured_attention(num_frames: int, key_frames: int, num_objects: int, contrast: float,
                         noise: float, seed: int) -> torch.Tensor:
    """T N K float32 attention: softmax_k(contrast * [same object] + noise * gaussian)."""
    gen = torch.Generator().manual_seed(seed)
    query_obj = object_ids(num_frames, num_objects)  # T N
    key_idx = torch.linspace(0, num_frames - 1, key_frames).round().long()
    key_obj = query_obj[key_idx].reshape(-1)  # K
    attention = torch.empty(num_frames, query_obj.shape[1], key_obj.shape[0])
    for t in range(num_frames):  # one frame at a time keeps the float32 temporaries small
        logits = contrast * (query_obj[t][:, None] == key_obj[None, :]).float()  # N K
        logits += noise * torch.randn(logits.shape, generator=gen)
        attention[t] = logits.softmax(-1)
    return attention


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--key-frames", type=int, default=5)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--contrast", type=float, default=4.0, help="logit bonus for keys of the patch's object")
    parser.add_argument("--noise", type=float, default=0.5, help="std of the Gaussian logit noise")
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keep_freed_memory()  # as vos segment does (vos.memory)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N={GRID_H * GRID_W}, "
          f"K={args.key_frames}x{GRID_H * GRID_W}, tau={args.tau}, window={args.window}")
    print("| T | N | K | clusters | wall s | wall ms / frame | CPU s |")
    print("|---|---|---|---|---|---|---|")
    total = 0.0
    for num_frames in args.frames:
        attention = structured_attention(num_frames, args.key_frames, args.objects, args.contrast,
                                         args.noise, args.seed)
        start, start_cpu = time.perf_counter(), time.process_time()
        labels = hierarchical_cluster(attention, tau=args.tau, window=args.window)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        total += seconds
        num_patches, num_keys = attention.shape[1:]
        print(f"| {num_frames} | {num_patches} | {num_keys} | {labels.max().item() + 1} | {seconds:.1f} | "
              f"{1000 * seconds / num_frames:.0f} | {cpu_seconds:.1f} |", flush=True)
        del attention
    print(f"clustered {sum(args.frames)} frames in {total:.1f} s ({1000 * total / sum(args.frames):.0f} ms/frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
