"""How well a block's attention maps separate ground-truth objects, in the clustering's own metric.

    python tools/attention_separation.py SYNTH_ROOT --backbone test_vit_tiny16 --weights random \
        --resolution 192 256 --block free --block runs/tiny/last.pt

For the first ``--frames`` frames (every ``--step``-th) of each sequence of a DAVIS-layout root, the
block's head-averaged attention over all those frames' patches is computed (as in training: one
joint sequence, no CLS), and the symmetric KL between every pair of attention rows is compared with
the ground-truth label at the patch centres. Printed per block (mean over sequences): mean row
entropy, mean distance of same-label and different-label pairs, and the fraction of each kind of
pair within ``--tau``; the clustering merges rows within tau, so a good block has many same-label
and few different-label pairs within it.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from vos.cluster import symmetric_kl
from vos.infra.video_reader import open_video
from vos.models.backbone import build_backbone, model_input_size
from vos.models.block import load_block, training_free_block
from vos.palette import read_label_png
from vos.train.data import normalize, resize_frames


def separation(attn: torch.Tensor, labels: np.ndarray, tau: float) -> tuple[float, ...]:
    """attn (N, N) rows = distributions, labels (N,) -> (entropy, d_same, d_diff, frac_same<=tau, frac_diff<=tau)."""
    d = symmetric_kl(attn, attn).numpy()
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    entropy = -(attn * attn.clamp_min(1e-30).log()).sum(-1).mean().item()
    s, o = same & off_diag, ~same
    return entropy, d[s].mean(), d[o].mean(), (d[s] <= tau).mean(), (d[o] <= tau).mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--backbone", default="test_vit_tiny16")
    p.add_argument("--weights", default="random")
    p.add_argument("--resolution", type=int, nargs=2, default=(192, 256))
    p.add_argument("--block", action="append", required=True, help="'free' or a checkpoint; repeatable")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--step", type=int, default=4)
    p.add_argument("--tau", type=float, default=1.0)
    args = p.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = build_backbone(args.backbone, args.weights)
    size = model_input_size(tuple(args.resolution), backbone.patch_size)
    for name in args.block:
        block = training_free_block(backbone.dim) if name == "free" else load_block(name, args.backbone, backbone.dim)[0]
        rows = []
        for seq in sorted((args.root / "JPEGImages" / "480p").iterdir()):
            video = open_video(seq)
            idx = list(range(0, args.frames * args.step, args.step))
            frames = video.read_frames(idx)  # T H W 3
            gt = np.stack([read_label_png(args.root / "Annotations_unsupervised" / "480p" / seq.name /
                                          f"{video.frame_names[i].rsplit('.', 1)[0]}.png") for i in idx])
            H, W = gt.shape[1:]
            h, w = size[0] // backbone.patch_size, size[1] // backbone.patch_size
            ys = ((np.arange(h) + 0.5) * H / h).astype(int)
            xs = ((np.arange(w) + 0.5) * W / w).astype(int)
            labels = gt[:, ys][:, :, xs].reshape(-1)  # T*h*w labels at the patch centres
            with torch.no_grad():
                keys = backbone(normalize(resize_frames(frames, size))).keys  # T P C
                q, k = block.queries_keys(keys.reshape(1, -1, backbone.dim))
                attn = (q @ k.transpose(-2, -1)).softmax(-1).mean(1)[0]  # N N
            rows.append(separation(attn, labels, args.tau))
        e, ds, dd, fs, fd = np.mean(rows, axis=0)
        print(f"{name}: entropy {e:.2f} (uniform {np.log(len(labels)):.2f}); symmetric KL same-label {ds:.2f}, "
              f"different-label {dd:.2f}; pairs within tau={args.tau}: same-label {fs:.2f}, different-label {fd:.2f}")


if __name__ == "__main__":
    main()
