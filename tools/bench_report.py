#!/usr/bin/env python
"""Benchmark `vos report`: size and seconds of an evaluation report of 30 sequences of 50-100 frames,
and of a segmentation report of one long video.

Evaluation: a synthetic root (``vos synth``, 5 sequences each of 50, 60, 70, 80, 90 and 100 frames,
3 objects, merged into one DAVIS-layout root) and results made from its ground truth with typical
errors (ids permuted, masks shifted, an object missed in part of the frames), so that the scores
spread. The report (scores with ``vos eval synth``'s code, chart, tables, 30 frame strips) is
timed end to end through :func:`vos.report.write_vos_report`, and the scoring alone
(:func:`vos.eval.evaluate_synth`, what ``vos eval synth`` takes) beside it.

Long video (``--long-frames N``, 0 to skip): a ``vos segment`` result folder of N label maps (two
squares; one changes its id half-way, one vanishes for a while), reported with its timeline.

  OMP_NUM_THREADS=1 python tools/bench_report.py [--workers 2] [--size 240 320] [--long-frames 10000] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vos.eval import evaluate_synth  # noqa: E402
from vos.infra.outputs import write_marker  # noqa: E402
from vos.palette import read_label_png, write_label_png  # noqa: E402
from vos.report import EvaluationSource, write_vos_report  # noqa: E402
from vos.synth import make_synthetic_dataset  # noqa: E402

LENGTHS = (50, 60, 70, 80, 90, 100)
PER_LENGTH = 5


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def merged_synth_root(base: Path, size: tuple[int, int]) -> Path:
    """One DAVIS-layout root with PER_LENGTH sequences of each of LENGTHS frames."""
    root = base / "synth"
    names = []
    for n, frames in enumerate(LENGTHS):
        part = base / f"part{frames}"
        make_synthetic_dataset(part, videos=PER_LENGTH, frames=frames, objects=3, size=size, seed=100 + n,
                               progress=False)
        for seq in sorted(p.name for p in (part / "JPEGImages" / "480p").iterdir()):
            name = f"len{frames}_{seq.split('_')[-1]}"
            for sub in ("JPEGImages", "Annotations_unsupervised", "Annotations"):
                shutil.copytree(part / sub / "480p" / seq, root / sub / "480p" / name)
            names.append(name)
        shutil.copy(part / "synth.json", root / "synth.json")  # marks the root as a vos synth root
        shutil.rmtree(part)
    for year in ("2017", "2016"):
        (root / "ImageSets" / year).mkdir(parents=True)
        (root / "ImageSets" / year / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def perturbed_results(root: Path, out: Path, seed: int = 0) -> None:
    """Results from the ground truth with one error kind per sequence (chosen at random)."""
    rng = np.random.default_rng(seed)
    for seq_dir in sorted((root / "Annotations_unsupervised" / "480p").iterdir()):
        kind = rng.integers(4)
        shift = int(rng.integers(2, 12))
        missed = int(rng.integers(1, 4))
        pngs = sorted(seq_dir.glob("*.png"))
        (out / seq_dir.name).mkdir(parents=True)
        for t, png in enumerate(pngs):
            labels = read_label_png(png)
            if kind == 1:
                labels = np.roll(labels, shift, axis=1)                      # masks shifted
            elif kind == 2 and t % 3 != 0:
                labels = np.where(labels == missed, 0, labels)              # an object missed in 2/3 of frames
            elif kind == 3:
                labels = np.array([0, 2, 3, 1], dtype=np.uint8)[labels]     # ids permuted
            write_label_png(out / seq_dir.name / png.name, labels)


def long_segment_output(out: Path, frames: int, size: tuple[int, int]) -> Path:
    folder = out / "long"
    folder.mkdir(parents=True)
    h, w = size
    for t in range(frames):
        labels = np.zeros((h, w), dtype=np.uint8)
        x = int((w - 40) * (0.5 + 0.5 * np.sin(t / 200)))
        labels[h // 4:h // 4 + 40, x:x + 40] = 1 if t < frames // 2 else 2
        if not frames // 5 <= t < frames // 5 + frames // 20:
            labels[h // 2:h // 2 + 30, w // 3:w // 3 + 30] = 3
        write_label_png(folder / f"{t:05d}.png", labels)
    write_marker(folder, "vos segment", video=str(out / "long.mp4"), frames=frames, mode="chunked",
                 settings={"key_every": 10, "mode": "auto", "full_max_frames": 100, "chunk_frames": 30,
                           "compat": None, "stride": 1, "max_frames": None})
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the scoring workers): comparable across
    loads of a shared machine, where wall time is not."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return {"seconds": round(time.perf_counter() - wall, 2), "cpu_seconds": round(cpu_seconds() - cpu, 2)}


def timed_report(path: Path, out: Path, **kwargs) -> dict:
    times = timed(lambda: write_vos_report(path, out, progress=False, **kwargs))
    return {**times, "megabytes": round(folder_megabytes(out), 2),
            "files": sum(1 for p in out.rglob("*") if p.is_file())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--long-frames", type=int, default=10_000)
    parser.add_argument("--keep", help="keep the reports in this folder (to look at them)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        keep = Path(args.keep) if args.keep else base / "reports"
        root = merged_synth_root(base, tuple(args.size))
        perturbed_results(root, base / "results")
        frames = sum(len(list(p.glob("*.png"))) for p in (base / "results").iterdir())
        # the scores alone, as `vos eval synth` computes them
        scoring = timed(lambda: evaluate_synth(root, base / "results", workers=args.workers, progress=False))
        numbers = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
                   "load_average_before": [round(x, 2) for x in os.getloadavg()],
                   "evaluation": {"sequences": len(list((base / "results").iterdir())), "frames": frames,
                                  "size": f"{args.size[1]}x{args.size[0]}", "workers": args.workers,
                                  "vos_eval_synth": scoring,
                                  **timed_report(base / "results", keep / "evaluation",
                                                 evaluation=EvaluationSource(davis_root=root), workers=args.workers)}}
        if args.long_frames:
            start = time.perf_counter()
            long = long_segment_output(base / "seg", args.long_frames, (240, 320))
            written = time.perf_counter() - start
            numbers["long_video"] = {"frames": args.long_frames, "size": "320x240",
                                     "writing_the_pngs_seconds": round(written, 1),
                                     **timed_report(long, keep / "long_video")}
        numbers["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(numbers, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
