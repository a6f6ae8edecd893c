"""Evaluation on the synthetic DAVIS-layout benchmark made by ``vos synth``.

DAVIS J&F with the official unsupervised protocol (``Annotations_unsupervised``, ImageSets/2017/val)
plus the object-centric metrics FG-ARI, FG-ARI-per-frame, mIoU and mBO on the same annotations
(void pixels removed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vos.eval.davis import read_sequence_list
from vos.eval.davis_eval import DavisResult, evaluate_davis
from vos.eval.ytvis import ObjectMetricsResult, run_video_jobs


@dataclass
class SynthResult:
    davis: DavisResult
    objects: ObjectMetricsResult


def evaluate_synth(root: str | os.PathLike, results_dir: str | os.PathLike, subset: str = "val",
                   workers: int | None = None, progress: bool = True) -> SynthResult:
    """DAVIS J&F (unsupervised, official) and FG-ARI/mIoU/mBO of ``results_dir`` on a synthetic root."""
    davis = evaluate_davis(root, results_dir, task="unsupervised", year=2017, subset=subset,
                           workers=workers, progress=progress)
    folder = Path(root) / "Annotations_unsupervised" / "480p"
    jobs = [("png", os.fspath(folder), os.fspath(results_dir), name)
            for name in read_sequence_list(root, 2017, subset)]
    return SynthResult(davis, run_video_jobs("synth", jobs, workers, progress))
