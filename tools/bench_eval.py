#!/usr/bin/env python
"""Benchmark `vos eval davis` against a slow reference that mirrors the official toolkit's computation.

Data: the shared real DAVIS-2017 val masks (``../shared/data/davis17-val-masks``): a temporary DAVIS
root whose unsupervised annotations are the OSVOS masks; the RVOS masks are scored with the
unsupervised protocol. Prints per-sequence counts, both wall times, the speedup, and checks that
all global numbers are identical.

  OMP_NUM_THREADS=1 python tools/bench_eval.py [--workers 2] [--sequences a,b] [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402

from eval_helpers import SHARED_MASKS, ref_evaluate  # noqa: E402
from vos.eval.davis_eval import evaluate_davis  # noqa: E402
from vos.palette import read_label_png  # noqa: E402


def build_root(root: Path, sequences: list[str]) -> None:
    for folder in ("Annotations_unsupervised", "Annotations"):
        (root / folder / "480p").mkdir(parents=True)
        for seq in sequences:
            (root / folder / "480p" / seq).symlink_to(SHARED_MASKS / "osvos-semisupervised" / seq)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{s}\n" for s in sequences))


def counts(seq: str) -> dict:
    gt_dir, res_dir = SHARED_MASKS / "osvos-semisupervised" / seq, SHARED_MASKS / "rvos-unsupervised" / seq
    frames = sorted(gt_dir.glob("*.png"))
    first = read_label_png(frames[0])
    return {"frames": len(frames), "size": f"{first.shape[1]}x{first.shape[0]}", "objects": int(first.max()),
            "proposals": int(max(read_label_png(res_dir / f.name).max() for f in frames))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--sequences", help="comma-separated subset (default: all 30)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out", help="write the measurements as JSON here")
    args = parser.parse_args()
    if not SHARED_MASKS.is_dir():
        print(f"shared masks not found at {SHARED_MASKS}", file=sys.stderr)
        return 2
    sequences = args.sequences.split(",") if args.sequences else sorted(
        p.name for p in (SHARED_MASKS / "osvos-semisupervised").iterdir() if p.is_dir())
    report = {"sequences": {s: counts(s) for s in sequences}, "workers": args.workers}
    for seq, c in report["sequences"].items():
        print(f"{seq:20s} {c['frames']:4d} frames {c['size']:>9s}  {c['objects']} objects  {c['proposals']:2d} proposals")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "davis"
        build_root(root, sequences)
        results = SHARED_MASKS / "rvos-unsupervised"
        start = time.perf_counter()
        fast = evaluate_davis(root, results, task="unsupervised", workers=args.workers, progress=True)
        report["fast_seconds"] = time.perf_counter() - start
        report["fast"] = fast.global_scores
        print(f"fast path ({args.workers} workers): {report['fast_seconds']:.1f} s", fast.global_scores)
        if not args.skip_reference:
            start = time.perf_counter()
            ref, _ = ref_evaluate(root, results, task="unsupervised", sequences=sequences)
            report["reference_seconds"] = time.perf_counter() - start
            report["reference"] = {k: float(v) for k, v in ref.items()}
            report["identical"] = all(np.float64(ref[k]) == fast.global_scores[k] for k in ref)
            report["speedup"] = report["reference_seconds"] / report["fast_seconds"]
            print(f"reference (1 process): {report['reference_seconds']:.1f} s; speedup {report['speedup']:.1f}x; "
                  f"identical numbers: {report['identical']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report.get("identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())
