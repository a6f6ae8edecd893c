"""How much of a backbone's nearest-neighbour structure is background: retrieval on `ssl-video synth` data
scored twice, by action class and by background family.

    python tools/ssl_shortcut_probe.py SYNTH_DIR CKPT [CKPT ...] [--frames 8 --frame-stride 1 --crop 32]

A CKPT of the form ``random:ARCH`` (e.g. ``random:r3d_tiny``) is a randomly initialised backbone
(torch seed 0): the baseline row.

Test videos query the training videos exactly as `ssl-video retrieve` does (10 clips per video,
per-set centring, cosine). "class R@1" is the usual score; "background R@1" counts a hit when the
nearest training video has the query's background family (read from SYNTH_DIR/synth.json). In the
test split the family is independent of the class, so a backbone that retrieves by background
scores high on background R@1 and near chance (1/C) on class R@1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ssl_video.data.clips import MultiClipVideos  # noqa: E402
from ssl_video.data.splits import load_items  # noqa: E402
from ssl_video.metrics import retrieval_recall  # noqa: E402
from ssl_video.models import build_backbone  # noqa: E402
from ssl_video.pretrained import load_backbone  # noqa: E402
from ssl_video.retrieval import video_features  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("synth_dir", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--crop", type=int, default=32)
    args = parser.parse_args(argv)
    manifest = json.loads((args.synth_dir / "synth.json").read_text())
    family_of = {v["relpath"]: v["background_family"] for v in manifest["videos"]}

    def families(items):
        return torch.tensor([family_of[str(it.path.relative_to(args.synth_dir))] for it in items])

    split_dir = args.synth_dir / "splits"
    gallery_items, _ = load_items("ucf101", args.synth_dir, split_dir, 1, "train")
    query_items, _ = load_items("ucf101", args.synth_dir, split_dir, 1, "test")
    clip = dict(frames=args.frames, frame_stride=args.frame_stride, crop=args.crop, clips_per_video=10)
    print("| checkpoint | class R@1 | class R@5 | background R@1 | background R@5 |")
    print("|---|---|---|---|---|")
    for ckpt in args.checkpoints:
        if ckpt.startswith("random:"):
            torch.manual_seed(0)
            backbone = build_backbone(ckpt[len("random:"):])
        else:
            backbone, _ = load_backbone(ckpt)
        gallery, gallery_labels = video_features(backbone, MultiClipVideos(gallery_items, **clip))
        query, query_labels = video_features(backbone, MultiClipVideos(query_items, **clip))
        by_class = retrieval_recall(query, query_labels, gallery, gallery_labels, (1, 5))
        by_background = retrieval_recall(query, families(query_items), gallery, families(gallery_items), (1, 5))
        print(f"| {ckpt} | {by_class['R@1']:.1f} | {by_class['R@5']:.1f} | {by_background['R@1']:.1f} | "
              f"{by_background['R@5']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
