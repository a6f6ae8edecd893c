"""Benchmark `vos segment`: time per stage and peak memory for several video lengths.

Each length runs in a fresh process so that its peak resident memory is its own. Input: a
synthetic clip (textured background, moving squares) written as JPEG frames, so decoding is real.

    python tools/bench_segment.py --frames 25 50 100 --backbone dino_vits16 --resolution 320 480
    python tools/bench_segment.py --frames 50 100 400 1000 3000 --mode chunked --resolution 160 240

``--repeat N`` runs every length N times (a fresh process each) and adds a row of medians: on a
shared machine single runs of the same code differ by 10% or more. ``--mode`` is
SegmentConfig.mode (auto: full up to 120 frames, chunked above).

``--device cuda`` runs the backbone, the attention and the clustering on the GPU (the clustering's
reference path there) and adds the peak GPU memory (``torch.cuda.max_memory_allocated``); phases are
timed with the GPU synchronised at their ends. On the CPU (the default) the same columns are measured,
so the GPU command is the CPU one with one flag changed:

    python tools/bench_segment.py --device cuda --frames 50 100 --backbone dino_vits16
    python tools/bench_segment.py --device cuda --frames 50 100 --backbone dino_vits8

Attention is the head-averaged attention over the key frames (``attention_over_keys``), summed over
the clustering's worker threads when several run at once; clustering is the rest of
attention + clustering (the block's query/key projections included).

``--ids`` measures id consistency instead: it writes one ``vos synth`` video of each length
(``--leave-frame``: the last object leaves the view and comes back), segments it and scores it
with one assignment per video (official DAVIS) and one per frame; the gap between the two is
what id switches cost.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_frames(folder: Path, frames: int, size: tuple[int, int] = (480, 854), seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    H, W = size
    background = (rng.random((H // 8, W // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)[:H, :W]
    folder.mkdir(parents=True)
    for t in range(frames):
        frame = background.copy()
        for k, colour in enumerate([(230, 30, 30), (30, 30, 230), (240, 240, 40)]):
            top, left = 60 + 110 * k, (40 + 9 * t * (k + 1)) % (W - 120)
            frame[top:top + 100, left:left + 120] = colour
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=90)


class PhaseTimer:
    """Wraps a function so that its calls and wall seconds (the device synchronised at the end) add
    up in ``calls`` and ``seconds``; thread-safe (the clustering's workers call the attention)."""

    def __init__(self, function, device):
        self.function, self.device, self.seconds, self.calls = function, device, 0.0, 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.function(*args, **kwargs)
        synchronize(self.device)
        with self.lock:
            self.seconds += time.perf_counter() - start
            self.calls += 1
        return result


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(args) -> dict:
    """Segment one synthetic clip in this process; returns timings and memory (MiB)."""
    import torch

    import vos.segment.chunked
    import vos.segment.segmenter
    from vos.memory import keep_freed_memory
    from vos.segment import SegmentConfig, VideoSegmenter, write_segmentation
    from vos.infra.video_reader import open_video

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `vos segment` does
    device = torch.device(args.device)
    attention = PhaseTimer(vos.segment.segmenter.attention_over_keys, device)
    vos.segment.segmenter.attention_over_keys = vos.segment.chunked.attention_over_keys = attention
    with tempfile.TemporaryDirectory() as tmp:
        make_frames(Path(tmp) / "clip", args.single)
        cache = {} if args.attention_cache_mib is None else {"attention_cache_mib": args.attention_cache_mib}
        config = SegmentConfig(backbone=args.backbone, weights="random", resolution=tuple(args.resolution),
                               key_every=args.key_every, mode=args.mode, **cache)
        segmenter = VideoSegmenter(config, device)
        # synchronised at the end of each forward, so that the backbone stage holds the GPU's work
        segmenter.backbone.forward = PhaseTimer(segmenter.backbone.forward, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        source = open_video(Path(tmp) / "clip")
        start = time.perf_counter()
        trace = RssTrace()
        seg = segmenter.segment(source, trace)
        write_segmentation(seg, source, Path(tmp) / "out" / "clip", progress=trace)
        total = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_mib = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    phases = {"attention": attention.seconds, "clustering": seg.timings["cluster"] - attention.seconds}
    return {"frames": args.single, "mode": "chunked" if segmenter.uses_chunks(args.single) else "full",
            "device": device.type, **{k: round(v, 2) for k, v in {**seg.timings, **phases}.items()},
            "attention_calls": attention.calls,
            "gpu_peak_mib": None if gpu_mib is None else round(gpu_mib), "total": round(total, 2),
            "clusters": seg.num_clusters, "peak_rss_mib": round(peak_mib), "model_rss_mib": round(base_mib),
            "pipeline_mib": round(peak_mib - base_mib), "rss_mib_per_100_frames": trace.block_peaks}


class RssTrace:
    """A stand-in for the progress bar that records resident memory against the frames done: a
    thread samples VmRSS every 0.2 s, and the highest value while the backbone is in each block
    of 100 frames is kept (MiB; the clustering of a chunk counts for the block its last frame is
    in). Each finished block is printed to stderr, so a long run shows as it goes whether its
    memory stays flat."""

    def __init__(self):
        self.n = 0.0
        self.block_peaks: list[int] = [0]
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while True:
            self.block_peaks[-1] = max(self.block_peaks[-1], current_rss_mib())
            time.sleep(0.2)

    def reset(self, total=None):
        self.n = 0.0

    def set_postfix_str(self, text, refresh=True):
        pass

    def update(self, n):
        self.n += n
        while int(self.n - 1e-6) // 100 >= len(self.block_peaks):
            done = len(self.block_peaks)
            print(f"frames {100 * (done - 1)}-{100 * done - 1}: {self.block_peaks[-1]} MiB", file=sys.stderr, flush=True)
            self.block_peaks.append(current_rss_mib())


def current_rss_mib() -> int:
    """This process's resident memory now (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def ids_row(args, frames: int) -> dict:
    """Segment a ``vos synth`` video of ``frames`` frames (an object leaves and comes back) and
    score it with one assignment per video and one per frame."""
    import torch

    from vos.eval.davis_eval import evaluate_davis
    from vos.segment import SegmentConfig, segment_videos
    from vos.synth import make_synthetic_dataset

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root, results = Path(tmp) / "synth", Path(tmp) / "results"
        make_synthetic_dataset(root, videos=1, frames=frames, objects=args.objects, size=(240, 320), seed=args.seed,
                               leave_frame=True, progress=False)
        config = SegmentConfig(backbone=args.backbone, weights=args.weights, resolution=tuple(args.resolution),
                               key_every=args.key_every, mode=args.mode)
        start = time.perf_counter()
        [summary] = segment_videos(root / "JPEGImages" / "480p" / "synth_0000", results, config)
        seconds = time.perf_counter() - start
        scores = {matching: evaluate_davis(root, results, matching=matching, workers=1).global_scores
                  for matching in ("sequence", "frame")}
    return {"frames": frames, "mode": args.mode, "objects": summary.objects, "seconds": round(seconds, 1),
            **{f"{m}_{k}": round(v, 4) for m, s in scores.items() for k, v in s.items() if k in ("J&F-Mean", "J-Mean", "F-Mean")}}


def median_row(runs: list[dict]) -> dict:
    """Medians of every number of the runs; the ratios are the medians of the runs' ratios."""
    row = {key: statistics.median(r[key] for r in runs) if isinstance(value, (int, float)) else value
           for key, value in runs[0].items()}  # mode and the memory trace: the first run's
    row["ratio_wall"] = statistics.median(ratio(r["cluster"], r["backbone"]) for r in runs)
    row["ratio_cpu"] = statistics.median(ratio(r["cluster_cpu"], r["backbone_cpu"]) for r in runs)
    return row


def ratio(part: float, whole: float) -> float:
    """part / whole; nan when whole rounded to 0 (tiny test models)."""
    return part / whole if whole > 0 else float("nan")


def table_row(label, r: dict) -> str:
    """A markdown row of one run (or of medians, see median_row)."""
    ratio_wall = r.get("ratio_wall", ratio(r["cluster"], r["backbone"]))
    ratio_cpu = r.get("ratio_cpu", ratio(r["cluster_cpu"], r["backbone_cpu"]))
    return (f"| {label} | {r['mode']} | {r['decode']:g} | {r['backbone']:g} ({r['backbone_cpu']:g}) | {r['cluster']:g} "
            f"({r['cluster_cpu']:g}) | {r['write']:g} | {ratio_wall:.0%} ({ratio_cpu:.0%}) | {r['clusters']:g} | "
            f"{r['peak_rss_mib']:g} | {r['pipeline_mib']:g} | {r.get('attention', 0):g} | {r.get('clustering', 0):g} | "
            f"{'–' if r.get('gpu_peak_mib') is None else r['gpu_peak_mib']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--backbone", default="dino_vits16")
    parser.add_argument("--resolution", type=int, nargs=2, default=[320, 480])
    parser.add_argument("--key-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the backbone, attention and clustering run (cuda: adds the peak GPU memory)")
    parser.add_argument("--attention-cache-mib", type=int, default=None,
                        help="SegmentConfig.attention_cache_mib (default: the config default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per length; with 2 or more, a row of medians")
    parser.add_argument("--mode", choices=["auto", "full", "chunked"], default="auto", help="SegmentConfig.mode")
    parser.add_argument("--ids", action="store_true", help="id consistency on vos synth videos (see above)")
    parser.add_argument("--objects", type=int, default=3, help="--ids: objects per synthetic video")
    parser.add_argument("--seed", type=int, default=0, help="--ids: vos synth seed")
    parser.add_argument("--weights", default="random", help="--ids: backbone weights ('random' or a file)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(run_one(args)))
        return
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.ids:
        rows = []
        for frames in args.frames:
            rows.append(ids_row(args, frames))
            print(json.dumps(rows[-1]), flush=True)
        print("\n| T | mode | objects found | J&F per video (J, F) | J&F per frame (J, F) | gap | seconds |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['frames']} | {r['mode']} | {r['objects']} | {r['sequence_J&F-Mean']:.3f} ({r['sequence_J-Mean']:.3f}, "
                  f"{r['sequence_F-Mean']:.3f}) | {r['frame_J&F-Mean']:.3f} ({r['frame_J-Mean']:.3f}, {r['frame_F-Mean']:.3f}) | "
                  f"{r['frame_J&F-Mean'] - r['sequence_J&F-Mean']:.3f} | {r['seconds']:g} |")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return
    rows = []
    for frames in args.frames:
        cmd = [sys.executable, __file__, "--single", str(frames), "--backbone", args.backbone,
               "--resolution", *map(str, args.resolution), "--key-every", str(args.key_every),
               "--threads", str(args.threads), "--mode", args.mode, "--device", args.device]
        if args.attention_cache_mib is not None:
            cmd += ["--attention-cache-mib", str(args.attention_cache_mib)]
        for _ in range(args.repeat):
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=REPO,
                                 env={**__import__("os").environ, "PYTHONPATH": str(REPO)}).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| T | mode | decode s | backbone s (CPU s) | attention+clustering s (CPU s) | write s | cluster/backbone "
          "wall (CPU) | clusters | peak RSS MiB | pipeline MiB (peak − model) | attention s | clustering s | "
          "peak GPU MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(table_row(r["frames"], r))
    if args.repeat > 1:
        for frames in args.frames:
            print(table_row(f"{frames} (median of {args.repeat})", median_row([r for r in rows if r["frames"] == frames])))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
