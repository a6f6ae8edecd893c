"""Reading a DAVIS root (ground truth) and a results folder (predicted label PNGs).

Layout (as the official toolkit): ``ImageSets/<year>/<subset>.txt`` lists the sequences;
``Annotations/480p/<seq>/*.png`` (semi-supervised) or ``Annotations_unsupervised/480p/<seq>/*.png``
(unsupervised) hold indexed label PNGs (0 background, k object k, 255 void). Results are
``<results>/<seq>/<stem>.png`` with the stem of each ground-truth PNG. Frames are the sorted
annotation PNGs (JPEG frames are not needed for scoring).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos.infra.errors import UserError
from vos.infra.fileio import read_text_file
from vos.palette import read_label_png

TASKS = ("unsupervised", "semi-supervised")
YEARS = (2016, 2017)
VOID = 255


@dataclass
class GroundTruth:
    """One sequence's ground truth, prepared as the official toolkit prepares it.

    ``labels``: (T, H, W) uint8, object k = pixels == k for k in 1..n_objects, everything else 0
    (void, and ids above the first frame's maximum, which the toolkit drops). ``void``: (T, H, W) bool.
    """

    sequence: str
    frames: list[str]
    labels: np.ndarray
    void: np.ndarray
    n_objects: int


def annotation_folder(task: str) -> str:
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"


def read_sequence_list(davis_root: str | os.PathLike, year: int, subset: str, task: str | None = None) -> list[str]:
    """Sequence names of ``ImageSets/<year>/<subset>.txt`` in file order; with ``task``, each must have
    its annotation folder."""
    if year not in YEARS:
        raise UserError(f"unknown DAVIS year {year}; choose one of {', '.join(map(str, YEARS))}")
    path = Path(davis_root) / "ImageSets" / str(year) / f"{subset}.txt"
    if not path.is_file():
        raise UserError(f"{path}: sequence list not found; is {davis_root} a DAVIS root "
                       f"(ImageSets/, Annotations*/) and does it have the {year} {subset!r} set?")
    names = [line.strip() for line in read_text_file(path, "a sequence list").splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: the sequence list is empty")
    bad = next((n for n in names if not n.isprintable() or "/" in n or "\\" in n or n in (".", "..")
                or len(n.encode()) > 255), None)  # 255 bytes: the longest file name
    if bad is not None:
        raise UserError(f"{path}: {bad!r} is not a sequence name (one folder name per line); the list is damaged")
    if task is not None:
        folder = Path(davis_root) / annotation_folder(task) / "480p"
        missing = [n for n in names if not (folder / n).is_dir()]
        if missing:
            raise UserError(f"{path}: names {len(missing)} sequence(s) that {folder} does not have, e.g. "
                           f"{missing[0]!r}; is the list damaged, or the DAVIS root incomplete?")
    return names


def select_sequences(available: list[str], wanted: list[str] | None, where: str) -> list[str]:
    """``wanted`` (in the set's order) or all of ``available``; unknown names are an error."""
    if not wanted:
        return available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise UserError(f"unknown sequence(s) {', '.join(unknown)}: not in {where}")
    return [name for name in available if name in wanted]


def load_ground_truth(davis_root: str | os.PathLike, sequence: str, task: str, year: int = 2017) -> GroundTruth:
    """Annotations of one sequence; ``year=2016`` merges every object id into one binary object."""
    folder = Path(davis_root) / annotation_folder(task) / "480p" / sequence
    pngs = sorted(folder.glob("*.png"))
    if not pngs:
        raise UserError(f"sequence {sequence}: no annotation PNGs in {folder}; "
                       f"the ImageSets list names a sequence this DAVIS root does not have")
    frames = [p.stem for p in pngs]
    first = _read_frame(pngs[0], sequence, frames[0], None)
    raw = np.stack([first] + [_read_frame(p, sequence, p.stem, first.shape) for p in pngs[1:]])
    void = raw == VOID
    labels = np.where(void, 0, raw).astype(np.uint8)
    if year == 2016:
        labels = (labels > 0).astype(np.uint8)
        n_objects = 1
    else:
        # The official toolkit counts objects in the first frame only; later, higher ids are dropped.
        n_objects = int(labels[0].max())
        labels[labels > n_objects] = 0
    return GroundTruth(sequence, frames, labels, void, n_objects)


def load_results(results_dir: str | os.PathLike, sequence: str, frames: list[str],
                 shape_hw: tuple[int, int]) -> np.ndarray:
    """Predicted label maps (T, H, W) uint8 for ``frames`` of ``sequence``; every frame must exist."""
    folder = Path(results_dir) / sequence
    if not folder.is_dir():
        raise UserError(f"sequence {sequence}: no results folder {folder}; "
                       "write one folder of indexed PNGs per sequence")
    return np.stack([_read_frame(folder / f"{frame}.png", sequence, frame, shape_hw) for frame in frames])


def _read_frame(path: Path, sequence: str, frame: str, shape_hw: tuple[int, int] | None) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"sequence {sequence}, frame {frame}: {path} is missing; "
                       "every annotated frame needs a result PNG with the same name")
    try:
        labels = read_label_png(path)
    except UserError as exc:
        raise UserError(f"sequence {sequence}, frame {frame}: {exc}") from exc
    if shape_hw is not None and labels.shape != tuple(shape_hw):
        raise UserError(f"sequence {sequence}, frame {frame}: {path} is {labels.shape[1]}x{labels.shape[0]} "
                       f"(WxH) but the annotation is {shape_hw[1]}x{shape_hw[0]}; save results at the "
                       "annotation resolution")
    return labels
