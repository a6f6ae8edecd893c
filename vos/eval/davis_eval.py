"""DAVIS protocol driver: per-sequence J/F, proposal matching, per-object statistics, global means.

Numbers equal the official davis2017-evaluation toolkit's (``evaluation_method.py``) on the same
files; the per-pair J/F arrays come from :mod:`vos.eval.metrics`' pairwise functions, sequences run
in a process pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from vos.eval import metrics
from vos.eval.davis import GroundTruth, load_ground_truth, load_results, read_sequence_list, select_sequences
from vos.eval.workers import map_jobs
from vos.infra.errors import UserError

MAX_PROPOSALS = 20             # official unsupervised limit
MAX_PROPOSALS_PER_FRAME = 300  # the SSL-UVOS copy's limit (per-frame matching)
MATCHINGS = ("sequence", "frame")
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass
class ObjectScore:
    """Statistics of one scored row: ``name`` is ``<seq>_<k>``; ``proposal`` the matched proposal id (unsupervised)."""

    name: str
    sequence: str
    object_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    proposal: int | None = None


@dataclass
class DavisResult:
    task: str
    year: int
    subset: str
    matching: str
    sequences: list[str]
    global_scores: dict[str, float]
    per_object: list[ObjectScore] = field(default_factory=list)

    @property
    def protocol(self) -> str:
        """One line naming the exact variant these numbers are."""
        skip = ", first and last frames skipped" if self.task == "semi-supervised" else ", all frames"
        binary = ", objects merged into one binary mask" if self.year == 2016 else ""
        if self.task == "semi-supervised":
            match = "object ids matched directly"
        elif self.matching == "sequence":
            match = "one Hungarian assignment per sequence on mean J&F (official)"
        else:
            match = ("per-frame Hungarian assignment on J+F (SSL-UVOS / Betrayed-by-Attention release; "
                     "NOT the official protocol, not comparable with official numbers)")
        return f"DAVIS-{self.year} {self.subset} {self.task}{skip}{binary}; {match}"


def score_sequence(gt: GroundTruth, pred: np.ndarray, task: str, matching: str = "sequence") -> list[ObjectScore]:
    """Score one sequence: ``pred`` (T, H, W) uint8 label map for the frames of ``gt``.

    Rows are returned in the official toolkit's order (proposal order for the unsupervised task),
    which fixes the floating-point order of the global means.
    """
    labels, void, n_gt, seq = gt.labels, gt.void, gt.n_objects, gt.sequence
    if task == "semi-supervised":
        if len(gt.frames) < 3:
            raise UserError(f"sequence {seq}: the semi-supervised task skips the first and last frames, "
                           f"so it needs at least 3 annotated frames (has {len(gt.frames)})")
        labels, pred, frames = labels[1:-1], pred[1:-1], gt.frames[1:-1]
        too_big = pred > n_gt
        if too_big.any():
            frame = frames[int(np.nonzero(too_big.any(axis=(1, 2)))[0][0])]
            raise UserError(f"sequence {seq}, frame {frame}: result index {int(pred.max())} is higher than "
                           f"the number of objects ({n_gt}); the semi-supervised task needs the "
                           "annotation's object ids")
        n_pred = n_gt
    else:
        limit = MAX_PROPOSALS if matching == "sequence" else MAX_PROPOSALS_PER_FRAME
        per_frame_max = pred.reshape(len(pred), -1).max(axis=1)
        if per_frame_max.max(initial=0) > limit:
            frame = gt.frames[int(np.argmax(per_frame_max > limit))]
            raise UserError(f"sequence {seq}, frame {frame}: result index {int(per_frame_max.max())} exceeds "
                           f"the maximum of {limit} proposals of the unsupervised task; "
                           f"use ids 1..{limit}")
        # Void pixels belong to no mask in the unsupervised task (the toolkit multiplies by not-void).
        pred = np.where(void, 0, pred).astype(np.uint8)
        n_pred = max(int(per_frame_max.max(initial=0)), n_gt)  # missing proposals are empty ones
    if n_gt == 0:
        return []

    j_pairs = metrics.pairwise_jaccard(pred, labels, n_pred, n_gt)       # P G T
    f_pairs = metrics.pairwise_boundary_f(pred, labels, n_pred, n_gt)    # P G T
    if task == "semi-supervised":
        ids = np.arange(n_gt)
        rows, cols, j_rows, f_rows = ids, ids, j_pairs[ids, ids], f_pairs[ids, ids]
    elif matching == "sequence":
        rows, cols, j_rows, f_rows = metrics.match_sequence(j_pairs, f_pairs)
    else:
        j_rows, f_rows = metrics.match_per_frame(j_pairs, f_pairs)
        rows, cols = None, np.arange(n_gt)  # rows are positions, not objects (see match_per_frame)

    scores = []
    for i in range(n_gt):
        object_id = int(cols[i]) + 1
        scores.append(ObjectScore(f"{seq}_{object_id}", seq, object_id,
                                  *metrics.db_statistics(j_rows[i]), *metrics.db_statistics(f_rows[i]),
                                  proposal=None if rows is None or task == "semi-supervised" else int(rows[i]) + 1))
    return scores


def global_means(per_object: list[ObjectScore]) -> dict[str, float]:
    """Object-weighted means over all rows (as ``evaluation_method.py``) and J&F-Mean."""
    if not per_object:
        raise UserError("no object to score: every sequence's first annotation frame is empty")
    column = {key: np.mean([getattr(s, key) for s in per_object])
              for key in ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")}
    values = [(column["j_mean"] + column["f_mean"]) / 2., column["j_mean"], column["j_recall"], column["j_decay"],
              column["f_mean"], column["f_recall"], column["f_decay"]]
    return {key: float(v) for key, v in zip(GLOBAL_KEYS, values)}


def _evaluate_one(job: tuple) -> list[ObjectScore]:
    davis_root, results_dir, sequence, task, year, matching = job
    gt = load_ground_truth(davis_root, sequence, task, year)
    pred = load_results(results_dir, sequence, gt.frames, gt.labels.shape[1:])
    if year == 2016:
        pred = (pred > 0).astype(np.uint8)  # any non-zero index is foreground (documented choice)
    return score_sequence(gt, pred, task, matching)


def evaluate_davis(davis_root: str | os.PathLike, results_dir: str | os.PathLike, task: str = "unsupervised",
                   year: int = 2017, subset: str = "val", matching: str = "sequence", workers: int | None = None,
                   sequences: list[str] | None = None, progress: bool = True) -> DavisResult:
    """Evaluate a results folder against a DAVIS root with the official protocol (see docs/eval.md).

    ``workers``: processes over sequences (default: CPU count; 1 = in this process).
    ``sequences``: a subset of the set's sequences (unknown names are an error).
    """
    if matching not in MATCHINGS:
        raise UserError(f"unknown matching {matching!r}; choose one of {', '.join(MATCHINGS)}")
    if matching == "frame" and task != "unsupervised":
        raise UserError("--matching frame only applies to the unsupervised task")
    if not os.path.isdir(results_dir):
        raise UserError(f"{results_dir}: results folder not found")
    names = select_sequences(read_sequence_list(davis_root, year, subset, task), sequences,
                             f"ImageSets/{year}/{subset}.txt of {davis_root}")
    jobs = [(os.fspath(davis_root), os.fspath(results_dir), name, task, year, matching) for name in names]
    per_sequence = map_jobs(_evaluate_one, jobs, workers, f"eval davis {task}", "seq", progress)
    ordered = [score for scores in per_sequence for score in scores]  # official order: for the means
    result = DavisResult(task, year, subset, matching, names, global_means(ordered))
    rank = {name: i for i, name in enumerate(names)}
    result.per_object = sorted(ordered, key=lambda s: (rank[s.sequence], s.object_id))
    return result
