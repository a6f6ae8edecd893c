"""Speed of video I/O and synthetic data generation.

    python tools/bench_io.py [--frames 96] [--size 480 854] [--repeats 3]

Measures (best of ``--repeats``): ``vos synth`` with its defaults (4 videos x 24 frames x 240x320),
then, on one synthetic DAVIS-480p-sized clip, decoding frames/s with decord, PyAV and a JPEG frame
folder (``iter_chunks(16)``), and overlay writing frames/s (``blend`` + ``VideoWriter``).
Prints one markdown table row per measurement.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vos.infra.video_reader import open_video
from vos.infra.video_writer import VideoWriter, available_mp4_codec
from vos.segment.overlay import blend
from vos.palette import read_label_png
from vos.synth import make_synthetic_dataset


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="frames of the decoding/overlay clip")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 854), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"mp4 codec {available_mp4_codec()}")
    print("| what | setting | time (s) | frames/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seconds = best_time(lambda: make_synthetic_dataset(tmp / "default", progress=False), args.repeats)
        print(f"| vos synth (defaults) | 4 videos x 24 frames, 240x320, 3 objects | {seconds:.2f} | "
              f"{96 / seconds:.0f} |")

        height, width = args.size
        make_synthetic_dataset(tmp / "big", videos=1, frames=args.frames, size=(height, width), progress=False)
        clip = tmp / "big" / "videos" / "synth_0000.mp4"
        folder = tmp / "big" / "JPEGImages" / "480p" / "synth_0000"
        sources = (("decord", clip, "decord"), ("PyAV", clip, "pyav"), ("JPEG folder", folder, "auto"))
        for label, path, backend in sources:
            def decode():
                video = open_video(path, backend=backend)
                assert sum(len(chunk) for chunk in video.iter_chunks(16)) == args.frames
            seconds = best_time(decode, args.repeats)
            print(f"| decode, {label} | {args.frames} frames {height}x{width}, iter_chunks(16) | {seconds:.2f} | "
                  f"{args.frames / seconds:.0f} |")

        frames = open_video(folder).read_frames(range(args.frames))
        labels = [read_label_png(p) for p in sorted((tmp / "big" / "Annotations" / "480p" / "synth_0000").iterdir())]

        def write_overlay():
            with VideoWriter(tmp / "overlay.mp4", fps=24) as writer:
                for frame, label in zip(frames, labels):
                    writer.write(blend(frame, label, contours=True))
        seconds = best_time(write_overlay, args.repeats)
        print(f"| overlay, blend + VideoWriter | {args.frames} frames {height}x{width}, contours | {seconds:.2f} | "
              f"{args.frames / seconds:.0f} |")
        np.testing.assert_equal(open_video(tmp / "overlay.mp4").num_frames, args.frames)


if __name__ == "__main__":
    main()
