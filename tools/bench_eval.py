#!/usr/bin/env python
"""Benchmark `vos eval davis` against a slow reference that mirrors the official toolkit's computation.

Data: the real DAVIS-2017 val masks (``shared/data/davis17-val-masks`` next to the repository's
folder, located by ``tests/helpers/davis_reference.py``): a temporary DAVIS
root whose unsupervised annotations are the OSVOS masks; the RVOS masks are scored with the
unsupervised protocol. Prints per-sequence counts, wall and CPU times of the fast path (all
sequences with --workers processes, then each sequence alone in one process) and of the reference
(one process, sequence by sequence, as the official loop), the speedups, and checks that all global
numbers are identical (the reference's global means are taken over its rows in the official order).

  OMP_NUM_THREADS=1 python tools/bench_eval.py [--workers 2] [--sequences a,b] [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the slow reference of the official code path lives in tests/helpers

import numpy as np  # noqa: E402

from tests.helpers.davis_reference import SHARED_MASKS, ref_evaluate, shared_davis_root  # noqa: E402
from vos.eval.davis_eval import evaluate_davis  # noqa: E402
from vos.palette import read_label_png  # noqa: E402


def counts(seq: str) -> dict:
    gt_dir, res_dir = SHARED_MASKS / "osvos-semisupervised" / seq, SHARED_MASKS / "rvos-unsupervised" / seq
    frames = sorted(gt_dir.glob("*.png"))
    first = read_label_png(frames[0])
    return {"frames": len(frames), "size": f"{first.shape[1]}x{first.shape[0]}", "objects": int(first.max()),
            "proposals": int(max(read_label_png(res_dir / f.name).max() for f in frames))}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (robust to other jobs sharing the machine)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--sequences", help="comma-separated subset (default: all 30)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out", help="write the measurements as JSON here (updated after every reference sequence)")
    args = parser.parse_args()
    if not SHARED_MASKS.is_dir():
        print(f"shared masks not found at {SHARED_MASKS}", file=sys.stderr)
        return 2
    sequences = args.sequences.split(",") if args.sequences else sorted(
        p.name for p in (SHARED_MASKS / "osvos-semisupervised").iterdir() if p.is_dir())
    report = {"sequences": {s: counts(s) for s in sequences}, "workers": args.workers}
    for seq, c in report["sequences"].items():
        print(f"{seq:20s} {c['frames']:4d} frames {c['size']:>9s}  {c['objects']} objects  {c['proposals']:2d} proposals")

    def save():
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "davis"
        shared_davis_root(root, sequences)
        results = SHARED_MASKS / "rvos-unsupervised"
        fast, wall, cpu = timed(lambda: evaluate_davis(root, results, task="unsupervised", workers=args.workers))
        report.update(fast_wall_s=wall, fast_cpu_s=cpu, fast=fast.global_scores)
        print(f"fast path ({args.workers} workers): {wall:.1f} s wall, {cpu:.1f} s CPU", fast.global_scores)
        per_seq = {}
        for seq in sequences:  # one process per sequence at a time, timed separately
            _, wall, cpu = timed(lambda: evaluate_davis(root, results, workers=1, sequences=[seq], progress=False))
            per_seq[seq] = {"fast_wall_s": wall, "fast_cpu_s": cpu}
        report["per_sequence"] = per_seq
        save()
        if not args.skip_reference:
            rows = []
            for seq in sequences:  # the reference mirrors the official single-process loop
                (_, seq_rows), wall, cpu = timed(lambda: ref_evaluate(root, results, sequences=[seq]))
                rows.extend(seq_rows)
                per_seq[seq].update(reference_wall_s=wall, reference_cpu_s=cpu)
                print(f"reference {seq:20s} {wall:7.1f} s wall {cpu:7.1f} s CPU "
                      f"(fast, 1 process: {per_seq[seq]['fast_cpu_s']:.1f} s CPU)", flush=True)
                save()
            columns = list(zip(*rows))
            jm, jr, jd, fm, fr, fd = (np.mean(list(c)) for c in columns[1:])
            ref = {"J&F-Mean": (jm + fm) / 2., "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
                   "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
            report["reference"] = {k: float(v) for k, v in ref.items()}
            report["identical"] = all(np.float64(ref[k]) == fast.global_scores[k] for k in ref)
            report["reference_wall_s"] = sum(v["reference_wall_s"] for v in per_seq.values())
            report["reference_cpu_s"] = sum(v["reference_cpu_s"] for v in per_seq.values())
            report["speedup_wall"] = report["reference_wall_s"] / report["fast_wall_s"]
            report["speedup_cpu"] = report["reference_cpu_s"] / report["fast_cpu_s"]
            print(f"reference (1 process): {report['reference_wall_s']:.1f} s wall, {report['reference_cpu_s']:.1f} s CPU; "
                  f"speedup {report['speedup_wall']:.1f}x wall, {report['speedup_cpu']:.1f}x CPU; "
                  f"identical numbers: {report['identical']}")
            save()
    return 0 if report.get("identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())
