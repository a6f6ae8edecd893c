"""Segment videos into object masks (DAVIS indexed PNGs, one per frame).

INPUT is a video file (mp4, avi, mov, webm, mkv), a folder of frames (00000.jpg …), or a folder of
several of either. Results: OUT/<video name>/<frame>.png with 0 = background, 1..n = objects, and
the marker OUT/<video name>/.vos-output.json. An existing OUT/<video name> is replaced only when it
holds that marker (an earlier result); anything else (a result written before markers existed too) needs
--overwrite. Outputs
inside the input, or inside a dataset's JPEGImages or Annotations* folders, are refused.
Under torchrun, each process segments its own share of the videos (one device each).
"""

from __future__ import annotations

import argparse

from vos.infra.config import load_config
from vos.infra.config_flags import add_config_arguments, config_overrides
from vos.segment.config import SegmentConfig

HELP = "segment videos into object masks (DAVIS PNGs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file, frame folder, or folder of videos / frame folders")
    parser.add_argument("--out", default="vos_output", help="output folder (default: %(default)s)")
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="settings file (e.g. configs/vos/segment.yaml); flags override it")
    add_config_arguments(parser, SegmentConfig)
    parser.add_argument("--overlay", default=None, metavar="FILE.mp4|DIR",
                        help="also write the frames with coloured masks (a folder of mp4s in batch mode)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing result folders and overlays even if they are not earlier results "
                             "of vos segment (by default those are refused; earlier results are replaced)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip videos whose folder holds a finished result of vos segment for the same video "
                             "(resume an interrupted batch); a folder it did not write is an error")
    parser.add_argument("--backend", choices=["auto", "decord", "pyav"], default="auto",
                        help="video decoder (default: decord, PyAV where decord fails)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the backbone, the attention and the clustering run: auto = the GPU if there "
                             "is one (clustering with the plain torch reference there), else the CPU (clustering "
                             "with the CPU fast path); the partition is the same (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from vos.memory import keep_freed_memory
    from vos.segment import segment_videos

    config = load_config(SegmentConfig, args.config, config_overrides(args, SegmentConfig))
    # process-wide, so here and not in the library: every clustering window allocates and frees large
    # arrays, which glibc should reuse rather than map afresh (vos.memory); before any thread allocates
    keep_freed_memory()
    segment_videos(args.input, args.out, config, overlay=args.overlay, skip_existing=args.skip_existing,
                   backend=args.backend, overwrite=args.overwrite, device=args.device)
    return 0
