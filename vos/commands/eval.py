"""Score segmentation results: DAVIS J&F, YouTube-VIS FG-ARI/mIoU/mBO, or the synthetic benchmark.

  vos eval davis --davis-root ROOT --results DIR [--task unsupervised|semi-supervised] [--year 2017|2016]
                 [--set val] [--matching sequence|frame] [--json FILE] [--workers N] [--csv-dir DIR]
  vos eval ytvis --root ROOT --results DIR [--annotations train.json] [--videos N | --video-list FILE]
  vos eval synth ROOT --results DIR

Results are folders of indexed PNGs, one folder per sequence/video, one PNG per annotated frame
with the annotation's file name (0 = background, k = object/proposal k; masks numbered from 0, such
as slot masks, must be shifted by 1 or their segment 0 is lost). See docs/eval.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vos.infra.outputs import check_output_file, check_writable, json_keys_owned

HELP = "evaluate results: DAVIS J&F, YouTube-VIS / synthetic FG-ARI, mIoU, mBO"
# vos.eval.davis.TASKS and vos.eval.davis_eval.MATCHINGS, spelled out so that --help does not import
# the evaluation (scipy, OpenCV)
TASKS = ("unsupervised", "semi-supervised")
MATCHINGS = ("sequence", "frame")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)

    davis = targets.add_parser("davis", help="DAVIS J&F with the official toolkit's protocol")
    davis.add_argument("--davis-root", required=True, help="DAVIS folder (ImageSets/, Annotations*/480p/)")
    davis.add_argument("--results", required=True, help="results folder: <seq>/<frame>.png indexed PNGs")
    davis.add_argument("--task", choices=TASKS, default="unsupervised")
    davis.add_argument("--year", type=int, choices=(2017, 2016), default=2017,
                       help="2016: ImageSets/2016, one binary object per sequence (any non-zero index is foreground)")
    davis.add_argument("--set", dest="subset", default="val", help="ImageSets/<year>/<set>.txt (default val)")
    davis.add_argument("--matching", choices=MATCHINGS, default="sequence",
                       help="unsupervised assignment: sequence (official) or frame (Betrayed-by-Attention "
                            "release's per-frame variant, not the official protocol)")
    davis.add_argument("--sequences", help="comma-separated subset of the set's sequences")
    _csv_dir(davis)
    _common(davis)

    ytvis = targets.add_parser("ytvis", help="YouTube-VIS-2019: FG-ARI, mIoU, mBO")
    ytvis.add_argument("--root", required=True, help="dataset folder (Annotations/<video>/*.png unless --annotations)")
    ytvis.add_argument("--results", required=True, help="results folder: <video>/<frame>.png indexed PNGs")
    ytvis.add_argument("--annotations", help="official JSON (e.g. train.json; relative paths also tried under ROOT)")
    which = ytvis.add_mutually_exclusive_group()
    which.add_argument("--videos", type=int, help="evaluate the first N videos")
    which.add_argument("--video-list", help="file with one video name per line")
    _common(ytvis)

    synth = targets.add_parser("synth", help="synthetic benchmark (vos synth): J&F + FG-ARI, mIoU, mBO")
    synth.add_argument("root", help="root written by vos synth (DAVIS layout)")
    synth.add_argument("--results", required=True, help="results folder: <seq>/<frame>.png indexed PNGs")
    _csv_dir(synth)
    _common(synth)


def _csv_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv-dir", help="folder for the two DAVIS CSVs (default: the results folder, as the "
                                          "official toolkit)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file that is not an earlier result of vos eval")
    parser.add_argument("--workers", type=int, help="worker processes (default: number of CPUs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    return {"davis": run_davis, "ytvis": run_ytvis, "synth": run_synth}[args.target](args)


def result_json_keys(target: str) -> tuple[str, ...]:
    """The keys of a JSON result of ``target``: a file holding them is an earlier result (and may be replaced)."""
    from vos.eval.davis_eval import GLOBAL_KEYS
    from vos.eval.object_metrics import OBJECT_METRIC_KEYS

    return {"davis": GLOBAL_KEYS, "ytvis": OBJECT_METRIC_KEYS, "synth": GLOBAL_KEYS + OBJECT_METRIC_KEYS}[target]


def check_outputs(args: argparse.Namespace) -> None:
    """Before evaluating: the --json file may be written (see vos.infra.outputs) and the CSV folder is writable."""
    check_output_file(args.json, "--json", json_keys_owned(result_json_keys(args.target)),
                      f"an earlier result of `vos eval {args.target}`", args.overwrite)
    if args.target in ("davis", "synth"):
        check_writable(Path(args.csv_dir or args.results) / "global_results.csv", "--csv-dir")


def run_davis(args: argparse.Namespace) -> int:
    from vos.eval import evaluate_davis
    from vos.eval.report import davis_json, davis_table, write_davis_csvs, write_json

    sequences = [s for s in args.sequences.split(",") if s] if args.sequences else None
    result = evaluate_davis(args.davis_root, args.results, task=args.task, year=args.year, subset=args.subset,
                            matching=args.matching, workers=args.workers, sequences=sequences,
                            progress=not args.quiet)
    csv_dir = args.csv_dir or args.results
    for note in write_davis_csvs(result, csv_dir):
        print(note, file=sys.stderr)
    print(davis_table(result))
    if args.json:
        write_json(args.json, davis_json(result))
    print(f"Evaluated {len(result.per_object)} objects in {len(result.sequences)} sequences: "
          f"J&F-Mean {result.global_scores['J&F-Mean']:.3f}; CSVs in {csv_dir}"
          + (f", JSON {args.json}" if args.json else ""))
    return 0


def _object_json(result) -> dict:
    from vos.eval.object_metrics import OBJECT_METRIC_KEYS, VARIANTS

    data = {key: result.summary[key] for key in OBJECT_METRIC_KEYS}
    data["variants"] = dict(VARIANTS)
    data["per_video"] = {v.video: {"FG-ARI": v.fg_ari, "FG-ARI-per-frame": v.fg_ari_per_frame,
                                   "mIoU": v.miou.tolist(), "mBO": v.mbo.tolist()} for v in result.per_video}
    return data


def run_ytvis(args: argparse.Namespace) -> int:
    from vos.eval import evaluate_ytvis
    from vos.eval.object_metrics import format_summary
    from vos.eval.report import write_json

    result = evaluate_ytvis(args.root, args.results, annotations=args.annotations, n_videos=args.videos,
                            video_list=args.video_list, workers=args.workers, progress=not args.quiet)
    print(format_summary(result.summary, f"YouTube-VIS results ({len(result.videos)} videos)"))
    if args.json:
        write_json(args.json, _object_json(result))
    print(f"Evaluated {len(result.videos)} videos: FG-ARI {result.summary['FG-ARI']:.3f}, "
          f"mIoU {result.summary['mIoU']:.3f}" + (f"; JSON {args.json}" if args.json else ""))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from vos.eval import evaluate_synth
    from vos.eval.object_metrics import format_summary
    from vos.eval.report import davis_json, davis_table, write_davis_csvs, write_json

    result = evaluate_synth(args.root, args.results, workers=args.workers, progress=not args.quiet)
    for note in write_davis_csvs(result.davis, args.csv_dir or args.results):
        print(note, file=sys.stderr)
    print(davis_table(result.davis))
    print(format_summary(result.objects.summary, f"Object metrics ({len(result.objects.videos)} sequences)"))
    if args.json:
        data = davis_json(result.davis)
        data.update(_object_json(result.objects))
        write_json(args.json, data)
    print(f"Evaluated {len(result.davis.sequences)} sequences: J&F-Mean {result.davis.global_scores['J&F-Mean']:.3f}, "
          f"FG-ARI {result.objects.summary['FG-ARI']:.3f}" + (f"; JSON {args.json}" if args.json else ""))
    return 0
