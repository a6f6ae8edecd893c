"""Benchmark the paper's setting: ViT-S/8 at 320x480 with a release-format block, ``--compat ssl-uvos``.

For each length T, one process segments the first T frames of a video (full mode, as the release
does) and reports the backbone's time (the frozen ViT-S/8 with the frames' resizing) against
attention + clustering's (the block's projections, the attention over the key frames, the
clustering and the object ids), wall and process CPU seconds, the clusters, the peak resident
memory, and a digest of the object ids (equal digests: the same partition).

The block is a checkpoint in the SSL-UVOS release's format with seeded random weights
(``tools/ssl_uvos_compat.py checkpoint``): the release's own file cannot be downloaded here.

    python tools/bench_paper_setting.py VIDEO --frames 25 50 100 --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_one(video: str, frames: int, threads: int, resolution: tuple[int, int], seed: int) -> dict:
    """Segment the first ``frames`` frames of ``video`` in this process; timings, memory, digest."""
    import torch

    sys.path.insert(0, str(REPO / "tools"))
    from ssl_uvos_compat import release_checkpoint

    from vos.infra.video_reader import open_video
    from vos.memory import keep_freed_memory
    from vos.segment import SegmentConfig, VideoSegmenter

    torch.set_num_threads(threads)
    keep_freed_memory()  # as `vos segment` does
    with tempfile.TemporaryDirectory() as tmp:
        block = Path(tmp) / "checkpoint_dino-s-8.pth"
        torch.save(release_checkpoint(seed, 0.1), block)
        config = SegmentConfig(block=str(block), compat="ssl-uvos", resolution=resolution, max_frames=frames)
        segmenter = VideoSegmenter(config)
    model_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    source = open_video(video, max_frames=frames)
    start = time.perf_counter()
    seg = segmenter.segment(source)
    total = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = seg.timings
    return {"frames": frames, "threads": threads, "decode_s": round(t["decode"], 1),
            "backbone_s": round(t["backbone"], 1), "backbone_cpu_s": round(t["backbone_cpu"], 1),
            "cluster_s": round(t["cluster"], 1), "cluster_cpu_s": round(t["cluster_cpu"], 1),
            "cluster_over_backbone_cpu": round(t["cluster_cpu"] / t["backbone_cpu"], 2),
            "total_s": round(total, 1), "clusters": seg.num_clusters, "objects": seg.num_objects,
            "peak_rss_mib": round(peak_mib), "model_rss_mib": round(model_mib),
            "digest": hashlib.md5(seg.objects.numpy().tobytes()).hexdigest()[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution", type=int, nargs=2, default=[320, 480])
    parser.add_argument("--seed", type=int, default=0, help="seed of the release-format checkpoint's weights")
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(run_one(args.video, args.single, args.threads, tuple(args.resolution), args.seed)))
        return
    for frames in args.frames:  # a process per length: its peak memory is its own
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, __file__, args.video, "--single", str(frames), "--threads",
                              str(args.threads), "--resolution", *map(str, args.resolution), "--seed", str(args.seed)],
                             check=True, capture_output=True, text=True, cwd=REPO).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["load_average"] = f"{load:.1f}-{os.getloadavg()[0]:.1f}"
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
