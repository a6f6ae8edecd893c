"""Decoding speed and memory of the video backends, in the two access patterns of the toolkit.

    python tools/bench_decode.py VIDEO [VIDEO ...] [--synthetic] [--frames 121] [--chunk 8] [--pause 0.1]
                                 [--clips 20] [--clip-frames 16] [--clip-stride 2] [--backends torchcodec decord pyav]
                                 [--patterns chunks clips]

For each video and backend (``open_video(path, backend=...)``), each in a fresh process:

- **chunks** (the pattern of ``vos segment``): the first ``--frames`` frames through
  ``iter_chunks(--chunk)``, with ``--pause`` seconds between chunks, outside the timing, standing
  for the backbone's work on a chunk (a decoder that works in the background between reads shows
  it in its memory);
- **clips** (the pattern of ``ssl-video``'s datasets): ``--clips`` clips of ``--clip-frames`` frames
  every ``--clip-stride`` frames at random starts (seed 0, the same for every backend), each from a
  newly opened video with one decoder thread, as a DataLoader worker reads them.

Reports frames/s (decoding time only) and the process's peak resident set size, also above the
process after its imports (torch, the reader, the backend's library): what decoding holds.
``--synthetic`` adds a 480x854 ``vos synth`` video of ``--synthetic-frames`` frames. Prints one
markdown table row per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BACKENDS = ("torchcodec", "decord", "pyav")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def chunks(path: Path, backend: str, frames: int, chunk: int, pause: float) -> dict:
    from vos.infra.video_reader import open_video

    video = open_video(path, backend=backend, max_frames=frames)
    seconds, decoded, batches = 0.0, 0, iter(video.iter_chunks(chunk))
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        seconds += time.perf_counter() - start
        if batch is None:
            break
        decoded += len(batch)
        time.sleep(pause)  # the consumer's work on the chunk
    return {"frames": decoded, "seconds": seconds, "backend_used": video.backend}


def clips(path: Path, backend: str, count: int, clip_frames: int, clip_stride: int) -> dict:
    from vos.infra.video_reader import fitting_stride, open_video

    rng = np.random.default_rng(0)
    seconds, decoded, used = 0.0, 0, backend
    for _ in range(count):
        start = time.perf_counter()
        video = open_video(path, backend=backend, threads=1)
        stride = fitting_stride(video.num_frames, clip_frames, clip_stride)
        first = int(rng.integers(0, max(1, video.num_frames - (clip_frames - 1) * stride)))
        indices = np.minimum(first + stride * np.arange(clip_frames), video.num_frames - 1)
        decoded += len(video.read_frames(indices.tolist()))
        seconds += time.perf_counter() - start
        used = video.backend
    return {"frames": decoded, "seconds": seconds, "backend_used": used}


def run_one(args: argparse.Namespace) -> None:
    """The child process: one (video, backend, pattern) measurement, printed as JSON."""
    import importlib

    import torch  # noqa: F401  (imported as by the toolkit's commands, so the baseline is theirs)

    import vos.infra.video_reader  # noqa: F401

    # the decoder's library (and, for torchcodec, FFmpeg's) is loaded before the baseline: what is
    # above it is what decoding holds
    importlib.import_module({"torchcodec": "torchcodec.decoders", "decord": "decord", "pyav": "av"}[args.backends[0]])
    baseline = peak_rss_mib()
    path = Path(args.videos[0])
    if args.one == "chunks":
        result = chunks(path, args.backends[0], args.frames, args.chunk, args.pause)
    else:
        result = clips(path, args.backends[0], args.clips, args.clip_frames, args.clip_stride)
    result.update(peak_rss_mib=peak_rss_mib(), baseline_rss_mib=baseline)
    print(json.dumps(result))


def measure(args: argparse.Namespace, video: Path, backend: str, pattern: str) -> dict | str:
    command = [sys.executable, __file__, str(video), "--one", pattern, "--backends", backend,
               "--frames", str(args.frames), "--chunk", str(args.chunk), "--pause", str(args.pause),
               "--clips", str(args.clips), "--clip-frames", str(args.clip_frames),
               "--clip-stride", str(args.clip_stride)]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="video files to decode")
    parser.add_argument("--synthetic", action="store_true", help="also a 480x854 vos synth video")
    parser.add_argument("--synthetic-frames", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--patterns", nargs="+", default=["chunks", "clips"], choices=["chunks", "clips"])
    parser.add_argument("--frames", type=int, default=121, help="chunks: the first FRAMES frames")
    parser.add_argument("--chunk", type=int, default=8, help="chunks: frames per chunk (vos segment --batch-frames)")
    parser.add_argument("--pause", type=float, default=0.1, help="chunks: seconds of 'work' after each chunk")
    parser.add_argument("--clips", type=int, default=20, help="clips: how many")
    parser.add_argument("--clip-frames", type=int, default=16, help="clips: frames per clip (ssl-video --frames)")
    parser.add_argument("--clip-stride", type=int, default=2, help="clips: stride (ssl-video --frame-stride)")
    parser.add_argument("--one", choices=["chunks", "clips"], help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        return run_one(args)

    from vos.infra.video_reader import open_video

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| video | pattern | backend | frames | decode s | frames/s | peak RSS MiB | above imports MiB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        videos = list(args.videos)
        if args.synthetic:
            from vos.synth import make_synthetic_dataset

            make_synthetic_dataset(Path(tmp), videos=1, frames=args.synthetic_frames, size=(480, 854), progress=False)
            videos.append(Path(tmp) / "videos" / "synth_0000.mp4")
        for video in videos:
            probe = open_video(video, backend="pyav")
            label = f"{video.name} ({probe.num_frames} frames, {probe.height}x{probe.width})"
            for pattern in args.patterns:
                for backend in args.backends:
                    result = measure(args, video, backend, pattern)
                    if isinstance(result, str):
                        print(f"| {label} | {pattern} | {backend} | failed: {result} | | | | |")
                        continue
                    used = "" if result["backend_used"] == backend else f" (read with {result['backend_used']})"
                    print(f"| {label} | {pattern} | {backend}{used} | {result['frames']} | {result['seconds']:.2f} | "
                          f"{result['frames'] / result['seconds']:.1f} | {result['peak_rss_mib']:.0f} | "
                          f"{result['peak_rss_mib'] - result['baseline_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
