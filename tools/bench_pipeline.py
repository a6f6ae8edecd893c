"""Benchmark the whole `vos segment` process against a bare backbone process over the same frames.

One invocation runs, in fresh processes, (a) `vos segment` as a user runs it (the real command
line: decoding, resizing, backbone, attention and clustering, upsampling, PNG writing) and (b) a
bare backbone loop: the same frames decoded with the same reader, resized as `vos segment`
resizes them, and passed through the frozen backbone, nothing else. For each it reports wall
seconds, CPU seconds (user + system, all threads) and peak resident memory (the kernel's account
of that child process), and the ratios whole / bare; the machine's load average at the start and
end of each process tells how shared the machine was.

    python tools/bench_pipeline.py VIDEO --frames 50 --mode full
    python tools/bench_pipeline.py VIDEO --frames 1000 --mode chunked --repeat 2
    python tools/bench_pipeline.py VIDEO --frames 121 --backend pyav --bare none   # memory only

The `vos segment` process is the command line itself (``vos.cli.main``); the tool only records the
per-stage seconds that `vos segment` measures (``VideoSummary.timings``: decode, backbone,
attention + clustering, write), so that the clustering's share is reported apart from the rest.
``--`` passes further flags to `vos segment` (e.g. ``-- --compat ssl-uvos``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The `vos segment` process: the command line, with its per-stage seconds written to a file.
WHOLE_PROCESS = """
import json, sys
import vos.segment.batch as batch
from vos.cli import main

timings_file, argv = sys.argv[1], sys.argv[2:]
segment_videos = batch.segment_videos

def recorded(*args, **kwargs):
    summaries = segment_videos(*args, **kwargs)
    with open(timings_file, "w") as f:
        json.dump([summary.timings for summary in summaries], f)
    return summaries

batch.segment_videos = recorded
raise SystemExit(main(argv))
"""


def run_bare(args) -> dict:
    """The bare backbone loop, in this process: decode, resize, backbone forward; nothing kept."""
    import torch

    from vos.infra.video_reader import open_video
    from vos.memory import keep_freed_memory
    from vos.models.backbone import build_backbone, model_input_size
    from vos.segment.config import DEFAULT_BACKBONE, input_resolution
    from vos.segment.conventions import conventions
    from vos.segment.segmenter import backbone_inputs

    keep_freed_memory()  # as `vos segment` does, so that the two differ only by the pipeline
    rules = conventions(args.compat)
    backbone = build_backbone(args.backbone or DEFAULT_BACKBONE, args.weights)
    source = open_video(args.video, max_frames=args.frames, backend=args.backend)
    size = model_input_size(input_resolution(source.height, source.width, args.resolution), backbone.patch_size)
    seconds = {"decode": 0.0, "backbone": 0.0}
    chunks = source.iter_chunks(args.batch_frames)
    with torch.no_grad():
        while True:
            start = time.perf_counter()
            frames = next(chunks, None)  # n H W 3 uint8
            seconds["decode"] += time.perf_counter() - start
            if frames is None:
                break
            start = time.perf_counter()
            backbone(backbone_inputs(frames, size, torch.device("cpu"), rules), with_cls=False)
            seconds["backbone"] += time.perf_counter() - start
    return {k: round(v, 2) for k, v in seconds.items()}


def run_child(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``: its wall and CPU seconds and peak RSS (MiB), from os.wait4 (this child alone), and
    the load average at its start and end."""
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall": round(wall, 2), "cpu": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024), "load_start": round(load_start, 2),
            "load_end": round(os.getloadavg()[0], 2), "stdout": stdout, "stderr": stderr}


def segment_argv(args, out_dir: Path) -> list[str]:
    argv = ["segment", str(args.video), "--out", str(out_dir), "--max-frames", str(args.frames), "--mode", args.mode,
            "--backend", args.backend, "--batch-frames", str(args.batch_frames), "--overwrite"]
    if args.backbone:
        argv += ["--backbone", args.backbone]
    if args.weights:
        argv += ["--weights", args.weights]
    if args.resolution:
        argv += ["--resolution", *map(str, args.resolution)]
    if args.compat:
        argv += ["--compat", args.compat]
    return argv + args.segment_flags


def bare_argv(args) -> list[str]:
    argv = [str(Path(__file__).resolve()), str(args.video), "--bare-child", "--frames", str(args.frames),
            "--backend", args.backend, "--batch-frames", str(args.batch_frames)]
    for flag, value in (("--backbone", args.backbone), ("--weights", args.weights), ("--compat", args.compat)):
        if value:
            argv += [flag, value]
    if args.resolution:
        argv += ["--resolution", *map(str, args.resolution)]
    return argv


def one_round(args, env: dict) -> dict:
    row = {"frames": args.frames, "mode": args.mode, "backend": args.backend}
    with tempfile.TemporaryDirectory() as tmp:
        timings_file = Path(tmp) / "timings.json"
        whole = run_child([sys.executable, "-c", WHOLE_PROCESS, str(timings_file),
                           *segment_argv(args, Path(tmp) / "out")], env)
        [stages] = json.loads(timings_file.read_text())
        row["whole"] = {k: whole[k] for k in ("wall", "cpu", "peak_rss_mib", "load_start", "load_end")}
        row["stages"] = {k: round(v, 2) for k, v in stages.items()}
        row["summary"] = [line for line in whole["stdout"].splitlines() if line.strip()][-2:]
    if args.bare == "run":
        bare = run_child([sys.executable, *bare_argv(args)], env)
        row["bare"] = {k: bare[k] for k in ("wall", "cpu", "peak_rss_mib", "load_start", "load_end")}
        row["bare_stages"] = json.loads(bare["stdout"].strip().splitlines()[-1])
        row["ratio_wall"] = round(row["whole"]["wall"] / row["bare"]["wall"], 3)
        row["ratio_cpu"] = round(row["whole"]["cpu"] / row["bare"]["cpu"], 3)
    return row


def table_row(r: dict) -> str:
    w, s = r["whole"], r["stages"]
    b = r.get("bare", {})
    load = f"{min(w['load_start'], w['load_end'], *(b.get(k, 99) for k in ('load_start', 'load_end'))):.1f}–" \
           f"{max(w['load_start'], w['load_end'], *(b.get(k, 0) for k in ('load_start', 'load_end'))):.1f}"
    bare = f"{b['wall']:g} ({b['cpu']:g})" if b else "–"
    ratio = f"**{r['ratio_wall']:.2f}×** ({r['ratio_cpu']:.2f}×)" if b else "–"
    return (f"| {r['frames']} | {r['mode']} | {r['backend']} | {w['wall']:g} ({w['cpu']:g}) | {bare} | {ratio} | "
            f"{s.get('decode', 0):g} | {s.get('backbone', 0):g} | {s.get('cluster', 0):g} | {s.get('write', 0):g} | "
            f"{w['peak_rss_mib']:g} | {b.get('peak_rss_mib', '–')} | {load} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="flags after -- go to vos segment")
    parser.add_argument("video", type=Path, help="video file or frame folder")
    parser.add_argument("--frames", type=int, default=50, help="frames to segment (vos segment --max-frames)")
    parser.add_argument("--mode", choices=["auto", "full", "chunked"], default="auto")
    parser.add_argument("--backbone", default=None, help="default: vos segment's")
    parser.add_argument("--weights", default="random", help="'random' or a file (default: %(default)s)")
    parser.add_argument("--resolution", type=int, nargs=2, default=None, help="default: vos segment's rule")
    parser.add_argument("--compat", default=None)
    parser.add_argument("--backend", choices=["auto", "decord", "pyav"], default="auto")
    parser.add_argument("--batch-frames", type=int, default=8)
    parser.add_argument("--bare", choices=["run", "none"], default="run",
                        help="none: the vos segment process alone (memory measurements)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (each: whole process, then bare)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.segment_flags = argv[split + 1:]
    if args.bare_child:
        print(json.dumps(run_bare(args)))
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    rows = []
    for _ in range(args.repeat):
        rows.append(one_round(args, env))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| T | mode | backend | vos segment wall s (CPU s) | bare backbone wall s (CPU s) | ratio wall (CPU) | "
          "decode s | backbone s | attention+clustering s | write s | peak RSS MiB | bare peak RSS MiB | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(table_row(r))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
