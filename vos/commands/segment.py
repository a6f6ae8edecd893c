"""Segment videos into object masks (DAVIS indexed PNGs, one per frame).

INPUT is a video file (mp4, avi, mov, webm, mkv), a folder of frames (00000.jpg …), or a folder of
several of either. Results: OUT/<video name>/<frame>.png with 0 = background, 1..n = objects, and
the marker OUT/<video name>/.vos-output.json. An existing OUT/<video name> is replaced only when it is
an earlier result (marker, or only frame PNGs); anything else needs --overwrite. Outputs inside the
input are refused.
Under torchrun, each process segments its own share of the videos (one device each).
"""

from __future__ import annotations

import argparse

from vos.compat import COMPAT_MODES
from vos.commands.backbone_flags import add_backbone_arguments
from vos.config import load_config
from vos.segment_config import DEFAULT_BACKBONE, SEGMENT_MODES, SegmentConfig, describe_resolution

HELP = "segment videos into object masks (DAVIS PNGs)"

# Flags that map onto SegmentConfig fields: their argparse default is None, so that only flags
# given on the command line override the --config file (and the file overrides the defaults).
CONFIG_FLAGS = ("backbone", "weights", "block", "resolution", "key_every", "tau", "window", "max_objects",
                "stride", "max_frames", "batch_frames", "attention_cache_mib", "compat", "mode", "full_max_frames",
                "chunk_frames", "link_similarity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SegmentConfig()
    parser.add_argument("input", help="video file, frame folder, or folder of videos / frame folders")
    parser.add_argument("--out", default="vos_output", help="output folder (default: %(default)s)")
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="settings file (e.g. configs/vos/segment.yaml); flags override it")
    add_backbone_arguments(parser, default_help=f"the --block checkpoint's, else {DEFAULT_BACKBONE}")
    parser.add_argument("--block", default=None, metavar="CKPT",
                        help="trained block: a checkpoint from 'vos train', or the SSL-UVOS release "
                             "(checkpoint_dino-s-8.pth, whose encoder is also the backbone unless --weights "
                             "is given) (default: training-free mode)")
    parser.add_argument("--resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="backbone input size, rounded to the patch size, used as given (default: per video, "
                             f"{describe_resolution(None)}; see docs/io.md)")
    parser.add_argument("--key-every", type=int, default=None, help=f"key frame interval (default: {d.key_every})")
    parser.add_argument("--tau", type=float, default=None, help=f"clustering threshold (default: {d.tau})")
    parser.add_argument("--window", type=int, default=None, help=f"frames per clustering window (default: {d.window})")
    parser.add_argument("--max-objects", type=int, default=None, help=f"object limit (default: {d.max_objects})")
    parser.add_argument("--stride", type=int, default=None, help=f"use every STRIDE-th frame (default: {d.stride})")
    parser.add_argument("--max-frames", type=int, default=None, help="use at most this many frames per video")
    parser.add_argument("--batch-frames", type=int, default=None,
                        help=f"frames per backbone pass (default: {d.batch_frames})")
    parser.add_argument("--attention-cache-mib", type=int, default=None, metavar="MIB",
                        help="memory for keeping window attention between the clustering and assignment "
                             f"passes instead of recomputing it; 0 recomputes all (default: {d.attention_cache_mib})")
    parser.add_argument("--compat", choices=COMPAT_MODES, default=None,
                        help="reproduce a release's inference conventions: 'ssl-uvos' = Kinetics mean/std, "
                             "key frames arange(T // k) * k, bilinear resize without antialiasing "
                             "(docs/ssl_uvos_compat.md) (default: this toolkit's)")
    parser.add_argument("--mode", choices=SEGMENT_MODES, default=None,
                        help="full: every frame attends to the key frames of the whole video (the reference "
                             "method; time per frame grows with the length, memory too); chunked: chunks of "
                             "--chunk-frames frames, each with its own key frames, objects linked across chunks "
                             "(time per frame and memory independent of the length); auto: full for videos of "
                             f"at most --full-max-frames frames ({d.full_max_frames} by default, counted after "
                             f"--stride/--max-frames), chunked above; with --compat, full at any length (default: {d.mode})")
    parser.add_argument("--full-max-frames", type=int, default=None, metavar="N",
                        help=f"longest video that --mode auto segments in full mode (default: {d.full_max_frames})")
    parser.add_argument("--chunk-frames", type=int, default=None, metavar="N",
                        help=f"frames per chunk in chunked mode (default: {d.chunk_frames})")
    parser.add_argument("--link-similarity", type=float, default=None, metavar="COS",
                        help="chunked mode: cosine similarity of object prototypes from which a chunk's object "
                             f"takes an existing id rather than a new one (default: {d.link_similarity})")
    parser.add_argument("--overlay", default=None, metavar="FILE.mp4|DIR",
                        help="also write the frames with coloured masks (a folder of mp4s in batch mode)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing result folders and overlays even if they are not earlier results "
                             "of vos segment (by default those are refused; earlier results are replaced)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip videos whose result folder exists (resume an interrupted batch)")
    parser.add_argument("--backend", choices=["auto", "decord", "pyav"], default="auto",
                        help="video decoder (default: decord, PyAV where decord fails)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the backbone, the attention and the clustering run: auto = the GPU if there "
                             "is one (clustering with the plain torch reference there), else the CPU (clustering "
                             "with the CPU fast path); the partition is the same (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from vos.memory import keep_freed_memory
    from vos.segment import segment_videos

    config = load_config(SegmentConfig, args.config, {name: getattr(args, name) for name in CONFIG_FLAGS})
    # process-wide, so here and not in the library: every clustering window allocates and frees large
    # arrays, which glibc should reuse rather than map afresh (vos.memory); before any thread allocates
    keep_freed_memory()
    segment_videos(args.input, args.out, config, overlay=args.overlay, skip_existing=args.skip_existing,
                   backend=args.backend, overwrite=args.overwrite, device=args.device)
    return 0
