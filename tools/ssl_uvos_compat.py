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
  patches outside the best one-to-one matching of clusters;
* ``posembed CKPT FRAMES``: how far timm's position-embedding resampling is from DINO's.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos.infra.errors import UserError  # noqa: E402
from vos.infra.fileio import load_torch_file  # noqa: E402
from vos.infra.schema import ListOf, MapOf, Tensor, check  # noqa: E402
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

    from vos.infra.video_reader import open_video

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


RELEASE_MASKS = "the masks_collection saved by the release's eval_oneshot.py ({frame: [masks (1, S, 1, h, w)]})"


def release_labels(path: Path) -> np.ndarray:
    """(T, h, w) cluster ids from the release's saved masks_collection."""
    masks = load_torch_file(path, RELEASE_MASKS)
    check(masks, MapOf(ListOf(Tensor(ndim=5), min_len=1), keys=int, min_len=1), path, f"expected {RELEASE_MASKS}")
    grids = {tuple(masks[t][0].shape[-2:]) for t in masks}
    if len(grids) != 1:
        raise UserError(f"{path}: its frames have masks of different sizes {sorted(grids)}; expected {RELEASE_MASKS}")
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


def position_embedding_difference(checkpoint: str, frames: str, resolution: tuple[int, int]) -> dict:
    """How far timm's resampling of the position embeddings (``resample_abs_pos_embed``: resize to the
    grid, bicubic, antialiased) is from DINO's, on the embeddings themselves and on the last-layer
    keys of the checkpoint's encoder on real frames (compat preprocessing). Also for a smooth 2-D
    sin-cos embedding of DINO's 28 x 28 grid with unit-variance channels."""
    from timm.layers import resample_abs_pos_embed

    import vos.models.dino as dino_module  # where DinoKeyBackbone looks dino_pos_embed up
    from vos.segment.conventions import conventions
    from vos.models.backbone import build_backbone, dino_pos_embed, model_input_size, preprocess_frames
    from vos.infra.video_reader import open_video

    backbone = build_backbone("dino_vits8", checkpoint)
    size = model_input_size(resolution, 8)
    grid = (size[0] // 8, size[1] // 8)
    n = math.isqrt(backbone.vit.pos_embed.shape[1] - 1)

    def timm_pos_embed(pos_embed, grid_hw):
        return resample_abs_pos_embed(pos_embed, new_size=list(grid_hw), old_size=[n, n], num_prefix_tokens=1)

    def relative(a, b):
        return float((a - b).norm() / b.norm())

    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    freqs = torch.logspace(0, 2, 96) ** -1  # periods from 1 to 100 patches
    smooth = torch.cat([torch.sin(yy[..., None] * freqs), torch.cos(yy[..., None] * freqs),
                        torch.sin(xx[..., None] * freqs), torch.cos(xx[..., None] * freqs)], dim=-1)  # n n 384
    smooth = torch.cat([torch.zeros(1, 384), smooth.reshape(n * n, 384)])[None] * math.sqrt(2)
    result = {
        "pos_embed_rel_diff_checkpoint": relative(timm_pos_embed(backbone.vit.pos_embed, grid),
                                                  dino_pos_embed(backbone.vit.pos_embed, grid)),
        "pos_embed_rel_diff_smooth": relative(timm_pos_embed(smooth, grid), dino_pos_embed(smooth, grid)),
    }
    conv = conventions("ssl-uvos")
    source = open_video(Path(frames))
    images = preprocess_frames(source.read_frames(range(source.num_frames)), size,
                               normalisation=conv.normalisation, resize=conv.resize)
    dino_keys = torch.cat([backbone(images[i:i + 4], with_cls=False).keys for i in range(0, len(images), 4)])
    original = dino_module.dino_pos_embed
    dino_module.dino_pos_embed = timm_pos_embed
    try:
        timm_keys = torch.cat([backbone(images[i:i + 4], with_cls=False).keys for i in range(0, len(images), 4)])
    finally:
        dino_module.dino_pos_embed = original
    result["keys_rel_diff_checkpoint"] = relative(timm_keys, dino_keys)
    result["grid"] = f"{grid[0]}x{grid[1]}"
    return result


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
    p = sub.add_parser("posembed")
    p.add_argument("checkpoint")
    p.add_argument("frames")
    p.add_argument("--resolution", type=int, nargs=2, default=(320, 480))
    args = parser.parse_args()
    if args.cmd == "checkpoint":
        torch.save(release_checkpoint(args.seed, args.block_std), args.out)
        print(f"wrote {args.out} (seed {args.seed}, block std {args.block_std})")
    elif args.cmd == "frames":
        n = write_frames(args.video, Path(args.out), args.stride, args.max_frames)
        print(f"wrote {n} frames to {args.out}")
    elif args.cmd == "posembed":
        result = position_embedding_difference(args.checkpoint, args.frames, tuple(args.resolution))
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    else:
        try:
            theirs = release_labels(Path(args.release_masks))
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        ours = grid_labels_from_pngs(Path(args.segment_dir), theirs.shape[1:])
        if ours.shape != theirs.shape:
            print(f"shape mismatch: ours {ours.shape}, release {theirs.shape}")
            return 1
        result = compare(ours, theirs)
        print(", ".join(f"{k} {v:.6f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
