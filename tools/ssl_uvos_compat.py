"""Evidence for ``vos segment --compat ssl-uvos``: our side of the comparison with the SSL-UVOS release.

Three steps (docs/ssl_uvos_compat.md gives the full recipe, including the release's side):

* ``checkpoint OUT.pth``: a checkpoint in the release's format (``model_state_dict`` with the DINO
  ViT-S/8 under ``encoder.*`` and the block under ``temporal_transformer.0.*``, ``iteration``,
  ``loss``) filled with seeded random values;
* ``frames VIDEO OUT_DIR``: frames of a video as lossless PNGs (00000.png, ...), so that both
  implementations read the very same pixels;
* ``compare SEGMENT_DIR RELEASE_MASKS.pth``: the partition of the patch grid written by
  ``vos segment`` (DAVIS PNGs, read at the patch centres) against the one the release's
  ``eval_oneshot.py`` saved (``{frame: [masks (1, S, 1, h, w)]}``): ARI, cluster counts, and the
  patches outside the best one-to-one matching of clusters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos.models.block import RELEASE_BLOCK_KEYS, RELEASE_BLOCK_PREFIX, RELEASE_NUM_HEADS, SpatioTemporalBlock  # noqa: E402


def release_checkpoint(seed: int, block_std: float, backbone_timm_name: str = "vit_small_patch8_224") -> dict:
    """A release-format checkpoint with seeded random values: timm's random ViT initialisation as the
    encoder; block weights ~ N(0, block_std), LayerNorm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.02)."""
    import timm

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vit = timm.create_model(backbone_timm_name, pretrained=False, num_classes=0)
    state = {f"encoder.{k}": v.clone() for k, v in vit.state_dict().items()}
    dim = vit.embed_dim
    block = SpatioTemporalBlock(dim, RELEASE_NUM_HEADS)
    ours_to_theirs = {ours: theirs for theirs, ours in RELEASE_BLOCK_KEYS.items()}
    for key, value in block.state_dict().items():
        prefix = next(p for p in ours_to_theirs if key.startswith(p))
        name = RELEASE_BLOCK_PREFIX + ours_to_theirs[prefix] + key[len(prefix):]
        if key.startswith("norm") and key.endswith("weight"):
            value = 1 + 0.1 * torch.randn(value.shape, generator=gen)
        elif key.endswith("bias"):
            value = 0.02 * torch.randn(value.shape, generator=gen)
        else:
            value = block_std * torch.randn(value.shape, generator=gen)
        state[name] = value
    return {"model_state_dict": state, "iteration": 0, "loss": 0.0}


def write_frames(video: str, out: Path, stride: int, max_frames: int | None) -> int:
    from PIL import Image

    from vos.video_io import open_video

    source = open_video(Path(video), stride, max_frames)
    out.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(source.read_frames(range(source.num_frames))):
        Image.fromarray(frame).save(out / f"{t:05d}.png")
    return source.num_frames


def grid_labels_from_pngs(folder: Path, grid: tuple[int, int]) -> np.ndarray:
    """(T, h, w) ids read at the patch centres of nearest-upsampled DAVIS PNGs."""
    from PIL import Image

    h, w = grid
    labels = []
    for png in sorted(folder.glob("*.png")):
        image = np.array(Image.open(png))
        H, W = image.shape
        rows = ((np.arange(h) + 0.5) * H / h).astype(int)
        cols = ((np.arange(w) + 0.5) * W / w).astype(int)
        labels.append(image[np.ix_(rows, cols)])
    return np.stack(labels)


def release_labels(path: Path) -> np.ndarray:
    """(T, h, w) cluster ids from the release's saved masks_collection."""
    masks = torch.load(path, map_location="cpu", weights_only=True)
    return np.stack([masks[t][0][0, :, 0].argmax(0).numpy() for t in sorted(masks)])  # S h w -> h w


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict:
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    a, b = ours.ravel(), theirs.ravel()
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), np.int64)
    np.add.at(table, (ai, bi), 1)
    rows, cols = linear_sum_assignment(-table)
    return {"patches": a.size, "clusters_ours": table.shape[0], "clusters_release": table.shape[1],
            "ari": adjusted_rand_score(a, b), "patches_outside_matching": int(a.size - table[rows, cols].sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("checkpoint")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-std", type=float, default=0.1)
    p = sub.add_parser("frames")
    p.add_argument("video")
    p.add_argument("out")
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--max-frames", type=int, default=None)
    p = sub.add_parser("compare")
    p.add_argument("segment_dir")
    p.add_argument("release_masks")
    args = parser.parse_args()
    if args.cmd == "checkpoint":
        torch.save(release_checkpoint(args.seed, args.block_std), args.out)
        print(f"wrote {args.out} (seed {args.seed}, block std {args.block_std})")
    elif args.cmd == "frames":
        n = write_frames(args.video, Path(args.out), args.stride, args.max_frames)
        print(f"wrote {n} frames to {args.out}")
    else:
        theirs = release_labels(Path(args.release_masks))
        ours = grid_labels_from_pngs(Path(args.segment_dir), theirs.shape[1:])
        if ours.shape != theirs.shape:
            print(f"shape mismatch: ours {ours.shape}, release {theirs.shape}")
            return 1
        result = compare(ours, theirs)
        print(", ".join(f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
