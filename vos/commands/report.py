"""Write an HTML report of what vos wrote: DIR/index.html and its files in DIR/assets/, opening offline.

  vos report SEGMENT_OUT --out DIR                       vos segment output (one video or a batch)
  vos report RESULTS --davis-root ROOT --out DIR         results scored as vos eval davis / vos eval synth
  vos report RESULTS --root ROOT [--annotations F] --out DIR   results scored as vos eval ytvis
  vos report RUN --out DIR                               a vos train run folder

The kind is recognised from the folder (the marker its command wrote, or --davis-root/--root for
scores). Evaluation reports recompute the scores with vos eval's code. See docs/report.md.
"""

from __future__ import annotations

import argparse
import shlex

HELP = "HTML report of a segmentation output, scored results or a training run"
# vos.eval.davis.TASKS and vos.eval.davis_eval.MATCHINGS, spelled out so that --help imports no evaluation
TASKS = ("unsupervised", "semi-supervised")
MATCHINGS = ("sequence", "frame")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="vos segment output, results folder, or vos train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="report folder (new, empty or an earlier report)")
    scores = parser.add_argument_group("scores (results folders)")
    scores.add_argument("--davis-root", help="DAVIS root or vos synth root: frames and ground truth")
    scores.add_argument("--root", help="YouTube-VIS root (JPEGImages/, Annotations/ unless --annotations)")
    scores.add_argument("--annotations", help="YouTube-VIS official JSON")
    scores.add_argument("--task", choices=TASKS, default="unsupervised")
    scores.add_argument("--year", type=int, choices=(2017, 2016), default=2017)
    scores.add_argument("--set", dest="subset", default="val", help="ImageSets/<year>/<set>.txt (default val)")
    scores.add_argument("--matching", choices=MATCHINGS, default="sequence")
    scores.add_argument("--sequences", help="comma-separated subset of the set's sequences")
    which = scores.add_mutually_exclusive_group()
    which.add_argument("--videos", type=int, help="YouTube-VIS: the first N videos")
    which.add_argument("--video-list", help="YouTube-VIS: file with one video name per line")
    parser.add_argument("--workers", type=int, help="scoring processes (default: number of CPUs)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out that is not a report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vos.report import EvaluationSource, write_vos_report

    evaluation = EvaluationSource(davis_root=args.davis_root, root=args.root, annotations=args.annotations,
                                  task=args.task, year=args.year, subset=args.subset, matching=args.matching,
                                  sequences=[s for s in args.sequences.split(",") if s] if args.sequences else None,
                                  videos=args.videos, video_list=args.video_list)
    kind, page = write_vos_report(args.path, args.out, evaluation, workers=args.workers, overwrite=args.overwrite,
                                  progress=not args.quiet, command_line=command_line(args))
    print(f"vos report: {kind} report of {args.path} -> {page}")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The command as it was given (the options that select what is reported), for the page's header."""
    parts = ["vos", "report", args.path, "--out", args.out]
    for flag in ("davis_root", "root", "annotations", "sequences", "videos", "video_list"):
        if getattr(args, flag) is not None:
            parts += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    if args.davis_root is not None:
        parts += ["--task", args.task, "--year", str(args.year), "--set", args.subset, "--matching", args.matching]
    return shlex.join(parts)
