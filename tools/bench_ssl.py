"""Speed benchmarks of the ssl_video pipeline; results go to docs/benchmarks.md ("## Video SSL").

    python tools/bench_ssl.py data [--data-root DIR] [--frames 16] [--frame-stride 2] [--crop 112]

``step``: clips per second of one MoCo pretraining step (FAME merge + normalisation + query and
key encoders + backward + SGD) without and with FAME, on random clips (no decoding), per arch.

    python tools/bench_ssl.py step [--archs r3d_tiny:8:64:16 r2plus1d_18:16:112:2] [--repeats 5]

``data``: decoding throughput (decord vs PyAV), DataLoader throughput of the three clip datasets
for several worker counts, and the cost of FAME masks/merging per clip. Without ``--data-root``
it first writes a synthetic dataset (``ssl-video synth``) into a temporary folder; with it, the
videos of any folder are used (``--dataset folder`` layout).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import vos.infra.video_reader as video_reader  # noqa: E402
from ssl_video.data.clips import LabeledClips, MultiClipVideos, PretrainClips, VideoFile, clip_indices  # noqa: E402
from ssl_video.data.splits import load_items  # noqa: E402
from ssl_video.fame import fame_merge, foreground_mask  # noqa: E402
from ssl_video.synth import make_synth_dataset  # noqa: E402


def machine_line() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}")


def timed(fn, repeats: int) -> float:
    """Seconds per call of ``fn`` (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


AUTO_ORDER = ("torchcodec", "decord", "pyav")  # the backends open_video(backend="auto") tries


def bench_decoding(items, frames: int, stride: int, backend: str) -> float:
    """Clips per second of opening a video and decoding one clip, single process, through
    ``VideoFile`` (backend "auto") with the backends "auto" tries before ``backend`` made unavailable."""
    earlier = {name: getattr(video_reader, f"{name}_available") for name in AUTO_ORDER[:AUTO_ORDER.index(backend)]}
    for name in earlier:
        setattr(video_reader, f"{name}_available", lambda: False)
    try:
        def one_pass():
            for it in items:
                video = VideoFile(it.path)
                video.get(clip_indices(len(video), frames, stride, 0))
        return len(items) / timed(one_pass, 1)
    finally:
        for name, available in earlier.items():
            setattr(video_reader, f"{name}_available", available)


def bench_loader(dataset, batch_size: int, workers: int, clips_per_item: int) -> float:
    """Clips per second through a DataLoader (one full pass after a warm-up pass)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        persistent_workers=workers > 0)
    return len(dataset) * clips_per_item / timed(lambda: [None for _ in loader], 1)


def bench_fame(batch: int, frames: int, crop: int) -> tuple[float, float]:
    """Clips per second of foreground_mask and of fame_merge on random clips in [0, 1]."""
    clips = torch.rand(batch, 3, frames, crop, crop, generator=torch.Generator().manual_seed(0))
    mask_s = timed(lambda: foreground_mask(clips, 0.5), 3)
    merge_s = timed(lambda: fame_merge(clips, 0.5), 3)
    return batch / mask_s, batch / merge_s


def run_data(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    tmp = None
    if args.data_root is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_ssl_")
        root = Path(tmp.name) / "synth"
        make_synth_dataset(root, classes=5, videos_per_class=args.videos // 5, frames=args.video_frames,
                           size=args.video_size, seed=0, progress=False)
        source = (f"synthetic: ssl-video synth --classes 5 --videos-per-class {args.videos // 5} "
                  f"--frames {args.video_frames} --size {args.video_size} (MPEG-4 AVI)")
    else:
        root = Path(args.data_root)
        source = str(root)
    items, _ = load_items("folder", root)
    items = items[: args.videos]
    print(f"# machine: {machine_line()}")
    print(f"# videos: {len(items)} from {source}")
    print(f"# clips: {args.frames} frames at stride {args.frame_stride}, crop {args.crop}")
    print("| measurement | throughput |")
    print("|---|---|")
    for backend in AUTO_ORDER:
        if backend != "pyav" and not getattr(video_reader, f"{backend}_available")():
            continue
        rate = bench_decoding(items, args.frames, args.frame_stride, backend)
        print(f"| decode one clip per video, {backend}, 1 process | {rate:.1f} clips/s |")
    datasets = [
        ("PretrainClips (2 augmented clips per video)", PretrainClips(items, args.frames, args.frame_stride, args.crop), 2),
        ("LabeledClips train", LabeledClips(items, args.frames, args.frame_stride, args.crop, train=True), 1),
        ("MultiClipVideos (10 clips per video)", MultiClipVideos(items, args.frames, args.frame_stride, args.crop), 10),
    ]
    for name, dataset, per_item in datasets:
        for workers in args.workers:
            bs = args.batch_size if per_item < 10 else 1
            rate = bench_loader(dataset, bs, workers, per_item)
            print(f"| {name}, DataLoader batch {bs}, {workers} workers | {rate:.1f} clips/s |")
    mask_rate, merge_rate = bench_fame(args.batch_size, args.frames, args.crop)
    print(f"| FAME foreground_mask, batch {args.batch_size} | {mask_rate:.1f} clips/s |")
    print(f"| FAME fame_merge (mask + paste), batch {args.batch_size} | {merge_rate:.1f} clips/s |")
    if tmp is not None:
        tmp.cleanup()


def bench_step(arch: str, frames: int, crop: int, batch: int, repeats: int) -> dict[bool, tuple[float, float]]:
    """Per variant (FAME off / on): (clips per second of ssl_video.pretrain.train_step, seconds of
    its view preparation ``make_views`` = FAME merge + normalisation). Clips count 2 per video.

    The variants alternate step by step and each keeps its fastest time, so that load from other
    jobs on a shared machine disturbs both alike and as little as possible."""
    from ssl_video.pretrain import PretrainConfig, build_model, make_views, train_step
    from vos.infra.distributed import DistContext

    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    clip_q = torch.rand(batch, 3, frames, crop, crop, generator=gen)  # B C T H W in [0, 1]
    clip_k = torch.rand(batch, 3, frames, crop, crop, generator=gen)
    setups = {}
    for fame in (False, True):
        cfg = PretrainConfig(arch=arch, frames=frames, crop=crop, batch_size=batch, fame=fame,
                             moco_k=max(2048, 2 * batch))
        torch.manual_seed(0)
        model = build_model(cfg)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
        setups[fame] = (cfg, model, optimizer)
        train_step(model, optimizer, clip_q, clip_k, cfg, ctx)  # warm-up
    best_step = {False: float("inf"), True: float("inf")}
    best_views = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for fame, (cfg, model, optimizer) in setups.items():
            start = time.perf_counter()
            make_views(clip_q, clip_k, cfg)
            best_views[fame] = min(best_views[fame], time.perf_counter() - start)
            start = time.perf_counter()
            train_step(model, optimizer, clip_q, clip_k, cfg, ctx)
            best_step[fame] = min(best_step[fame], time.perf_counter() - start)
    return {fame: (2 * batch / best_step[fame], best_views[fame]) for fame in (False, True)}


def run_step(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(f"# machine: {machine_line()}")
    print(f"# fastest of {args.repeats} alternating steps per variant (random clips, no decoding)")
    print("| arch | clip (T x crop) | batch (videos) | step without FAME | step with FAME | "
          "FAME merge + normalise per step | its share of the plain step |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.archs:
        arch, frames, crop, batch = spec.split(":")
        frames, crop, batch = int(frames), int(crop), int(batch)
        res = bench_step(arch, frames, crop, batch, args.repeats)
        (plain, plain_views), (fame, fame_views) = res[False], res[True]
        step_seconds = 2 * batch / plain
        print(f"| {arch} | {frames} x {crop} | {batch} | {plain:.2f} clips/s | {fame:.2f} clips/s | "
              f"{1000 * fame_views:.0f} ms (plain: {1000 * plain_views:.0f} ms) | "
              f"{100 * (fame_views - plain_views) / step_seconds:.1f}% |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    data = sub.add_parser("data", help="decoding, clip loading and FAME mask throughput")
    data.add_argument("--data-root", help="folder of videos (default: a fresh synthetic dataset)")
    data.add_argument("--videos", type=int, default=40, help="number of videos used (default 40)")
    data.add_argument("--video-frames", type=int, default=64, help="frames per synthetic video (default 64)")
    data.add_argument("--video-size", type=int, default=160, help="synthetic frame size in pixels (default 160)")
    data.add_argument("--frames", type=int, default=16)
    data.add_argument("--frame-stride", type=int, default=2)
    data.add_argument("--crop", type=int, default=112)
    data.add_argument("--batch-size", type=int, default=8)
    data.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    data.add_argument("--threads", type=int, default=1,
                      help="torch threads of the main process (DataLoader workers always use 1; default 1)")
    data.set_defaults(run=run_data)
    step = sub.add_parser("step", help="clips per second of a MoCo pretraining step without / with FAME")
    step.add_argument("--archs", nargs="+", default=["r3d_tiny:8:64:16", "r2plus1d_18:16:112:2"],
                      metavar="ARCH:FRAMES:CROP:BATCH", help="configurations to time")
    step.add_argument("--repeats", type=int, default=5, help="timed steps per variant (after one warm-up)")
    step.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    step.set_defaults(run=run_step)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
