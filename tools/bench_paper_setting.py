"""Benchmark the paper's setting: ViT-S/8 at 320x480 with a release-format block, ``--compat ssl-uvos``.

For each length T, one process segments the first T frames of a video (full mode, as the release
does) and reports the backbone's time (the frozen ViT-S/8 with the frames' resizing) against
attention + clustering's (the block's projections, the attention over the key frames, the
clustering and the object ids), wall and process CPU seconds, the clusters, the peak resident
memory, and a digest of the object ids (equal digests: the same partition).

The block is a checkpoint in the SSL-UVOS release's format with seeded random weights
(``tools/ssl_uvos_compat.py checkpoint``): the release's own file cannot be downloaded here.

    python tools/bench_paper_setting.py VIDEO --frames 25 50 100 --threads 2
    python tools/bench_paper_setting.py VIDEO --frames 50 --threads 1 --stages

``--stages`` times the first clustering window's stages instead (process CPU seconds): the
attention over the key frames, the lower bound, the float32 distances, the float64 repair of
borderline pairs, the neighbour sums, and the greedy grouping, with the counts that drive them.
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


def paper_segmenter(frames: int, threads: int, resolution: tuple[int, int], seed: int):
    """The segmenter of the setting, with a release-format checkpoint of seeded weights; sets this
    process's threads and malloc as `vos segment` does."""
    import torch

    sys.path.insert(0, str(REPO / "tools"))
    from ssl_uvos_compat import release_checkpoint

    from vos.memory import keep_freed_memory
    from vos.segment import SegmentConfig, VideoSegmenter

    torch.set_num_threads(threads)
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        block = Path(tmp) / "checkpoint_dino-s-8.pth"
        torch.save(release_checkpoint(seed, 0.1), block)
        return VideoSegmenter(SegmentConfig(block=str(block), compat="ssl-uvos", resolution=resolution,
                                            max_frames=frames))


def run_one(video: str, frames: int, threads: int, resolution: tuple[int, int], seed: int) -> dict:
    """Segment the first ``frames`` frames of ``video`` in this process; timings, memory, digest."""
    from vos.infra.video_reader import open_video

    segmenter = paper_segmenter(frames, threads, resolution, seed)
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


def window_stages(video: str, frames: int, threads: int, resolution: tuple[int, int], seed: int) -> dict:
    """CPU seconds of the stages of the first clustering window (frames 0-2) of the setting."""
    from tqdm import tqdm

    import vos.cluster.fast as fast
    import vos.cluster.kl_search as kl_search
    from vos.cluster.settings import DEFAULT_SETTINGS
    from vos.infra.video_reader import open_video
    from vos.segment.attention import attention_over_keys
    from vos.segment.segmenter import new_timings

    segmenter = paper_segmenter(frames, threads, resolution, seed)
    source = open_video(video, max_frames=frames)
    queries, keys, _ = segmenter._queries_and_keys(source, tqdm(disable=True), new_timings())
    seconds: dict[str, float] = {}

    def timed(name, function):
        def run(*args, **kwargs):
            start = time.process_time()
            result = function(*args, **kwargs)
            seconds[name] = seconds.get(name, 0.0) + time.process_time() - start
            return result
        return run

    attention = timed("attention", attention_over_keys)(queries[0:3], keys).reshape(-1, keys.shape[1])
    sums = fast._row_sums(attention, 0, queries.shape[2])
    key_groups = kl_search.learn_key_groups(attention, sums)
    rows = kl_search.attention_rows(attention, sums, key_groups)
    for name in ("_upper_candidates", "float64_pair_distances", "tiled_cross_products"):
        setattr(kl_search, name, timed(name, getattr(kl_search, name)))
    fast._sum_rows = timed("neighbour_sums", fast._sum_rows)
    averaged = timed("averaging", fast._neighbourhood_average)(rows, 1.0, DEFAULT_SETTINGS)
    averages = kl_search.rows32(averaged.rows, key_groups)
    groups = timed("greedy", fast._greedy_group_in_place)(averages, 1.0, averaged.counts, key_groups, DEFAULT_SETTINGS)
    return {"frames": frames, "rows": attention.shape[0], "keys": attention.shape[1],
            "distinct_averages": averaged.rows.shape[0], "groups": groups.numel(),
            **{f"{name}_cpu_s": round(value, 2) for name, value in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution", type=int, nargs=2, default=[320, 480])
    parser.add_argument("--seed", type=int, default=0, help="seed of the release-format checkpoint's weights")
    parser.add_argument("--stages", action="store_true", help="time the first window's stages (see above)")
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        for frames in args.frames:
            print(json.dumps(window_stages(args.video, frames, args.threads, tuple(args.resolution), args.seed)))
        return
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
