"""Write a synthetic action dataset (UCF101 layout) whose backgrounds are a measurable shortcut.

Classes are motion patterns of a textured square. In the training split each class has its own
background family; in the test split backgrounds are drawn independently of the class. Use it with
`--dataset ucf101 --data-root OUT --split-dir OUT/splits --split 1` (OUT/splits is also found by default).
"""

from __future__ import annotations

import argparse

from ssl_video.synth import FLIP_SAFE_MOTIONS, MOTIONS, SynthOptions, make_synth_dataset
from vos.infra.errors import UserError

HELP = "write a synthetic action dataset with class-correlated training backgrounds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SynthOptions()
    parser.add_argument("out", metavar="OUT", help="output folder (new, empty, or an interrupted run to resume)")
    parser.add_argument("--classes", type=int,
                        help=f"number of classes, 2..{len(MOTIONS)}, taken in order from {', '.join(MOTIONS)} "
                             f"(default {d.classes})")
    parser.add_argument("--motions", metavar="NAME,NAME,...",
                        help="the classes by name instead of --classes, e.g. " + ",".join(FLIP_SAFE_MOTIONS) +
                             " (classes that a horizontal flip does not turn into each other)")
    parser.add_argument("--object-size", type=float, default=d.object_size,
                        help=f"object side / frame side, 0.05..0.6 (default {d.object_size}: 6%% of the frame)")
    parser.add_argument("--object-appearance", choices=("random", "shared"), default=d.object_appearance,
                        help="random: each video's object has its own texture and colours (default); shared: one "
                             "object for all videos, so only its motion tells videos apart once FAME swaps backgrounds")
    parser.add_argument("--videos-per-class", type=int, default=d.videos_per_class,
                        help=f"videos per class (default {d.videos_per_class})")
    parser.add_argument("--frames", type=int, default=d.frames, help=f"frames per video (default {d.frames})")
    parser.add_argument("--size", type=int, default=d.size, help=f"frame width = height in pixels, even (default {d.size})")
    parser.add_argument("--test-fraction", type=float, default=d.test_fraction,
                        help="fraction of each class's videos (its first groups) in the test split (default 1/3)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    motions = [m.strip() for m in args.motions.split(",")] if args.motions else None
    if motions and args.classes is not None and args.classes != len(motions):
        raise UserError(f"--classes {args.classes} disagrees with the {len(motions)} --motions given; give only one")
    classes = len(motions) if motions else (args.classes if args.classes is not None else SynthOptions().classes)
    summary = make_synth_dataset(args.out, classes=classes, videos_per_class=args.videos_per_class,
                                 frames=args.frames, size=args.size, seed=args.seed,
                                 test_fraction=args.test_fraction, object_size=args.object_size, motions=motions,
                                 object_appearance=args.object_appearance,
                                 progress=not args.no_progress)
    print(f"synth: {summary['videos']} videos ({summary['train']} train / {summary['test']} test, "
          f"{classes} classes, {args.frames}x{args.size}x{args.size}) in {args.out}: "
          f"{summary['written']} written, {summary['skipped']} already there, {summary['seconds']:.1f} s; "
          f"splits in {args.out}/splits")
    return 0
