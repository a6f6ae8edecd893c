"""Write synthetic multi-object videos with exact masks in the DAVIS layout.

Output: OUT/JPEGImages/480p/<seq>/*.jpg, OUT/Annotations_unsupervised/480p/<seq>/*.png (indexed,
0 background, 1..K objects), OUT/Annotations/480p/<seq>/*.png (same masks), OUT/ImageSets/2017/val.txt,
OUT/ImageSets/2016/val.txt, OUT/videos/<seq>.mp4 and OUT/synth.json. Same seed, same masks.

example: vos synth data/synth --videos 8 --frames 32 --objects 4 --camera-pan --leave-frame
"""

from __future__ import annotations

import argparse

HELP = "generate a synthetic multi-object video dataset (DAVIS layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (new, empty, or a previous synth output)")
    parser.add_argument("--videos", type=int, default=4, help="number of sequences (default: 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames per sequence (default: 24)")
    parser.add_argument("--objects", type=int, default=3, help="objects per sequence, 1..20 (default: 3)")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                        help="frame height and width, even, >= 32 (default: 240 320)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--camera-pan", action="store_true", help="pan the camera (background and objects shift)")
    parser.add_argument("--leave-frame", action="store_true",
                        help="the last object of each sequence leaves the view mid-clip and comes back")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the mp4 videos (default: 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")


def run(args: argparse.Namespace) -> int:
    from vos.synth import make_synthetic_dataset

    make_synthetic_dataset(args.out, videos=args.videos, frames=args.frames, objects=args.objects,
                           size=tuple(args.size), seed=args.seed, camera_pan=args.camera_pan, fps=args.fps,
                           leave_frame=args.leave_frame, progress=not args.quiet)
    return 0
