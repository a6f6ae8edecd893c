"""HTML reports of what ``vos`` wrote (``vos report``): evaluation results, segmentation outputs and
training runs; see docs/report.md.

:func:`write_vos_report` recognises the kind of folder, gathers its numbers and writes
``DIR/index.html`` with its assets (:mod:`vos.infra.report_page`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vos.infra.errors import UserError
from vos.infra.outputs import MARKER, read_marker

REPORT_COMMAND = "vos report"
TRAIN_COMMAND = "vos train"  # the marker of its run folders (vos.train.trainer)
KINDS = ("davis", "synth", "ytvis", "segment", "train")


@dataclass
class EvaluationSource:
    """Where the ground truth of an evaluation report is: a DAVIS root (``synth`` for a ``vos synth``
    root) or a YouTube-VIS root, and the options of ``vos eval`` that select what is scored."""

    davis_root: Optional[Path] = None
    root: Optional[Path] = None           # YouTube-VIS
    annotations: Optional[str] = None     # YouTube-VIS JSON
    task: str = "unsupervised"
    year: int = 2017
    subset: str = "val"
    matching: str = "sequence"
    sequences: Optional[list[str]] = None
    videos: Optional[int] = None
    video_list: Optional[str] = None


def recognise(path: Path, evaluation: EvaluationSource | None = None) -> str:
    """The kind of ``path`` (one of :data:`KINDS`), or one line saying why it is none."""
    from vos.report.segmentation import segment_folders
    from vos.synth import MANIFEST

    if not path.is_dir():
        raise UserError(f"{path}: not a folder; give a folder written by `vos segment`, `vos train` or scored "
                       "by `vos eval`")
    if evaluation is not None and (evaluation.davis_root or evaluation.root):
        if evaluation.davis_root and evaluation.root:
            raise UserError("give either --davis-root (DAVIS, vos synth) or --root (YouTube-VIS), not both")
        if evaluation.root:
            return "ytvis"
        return "synth" if (Path(evaluation.davis_root) / MANIFEST).is_file() else "davis"
    marker = read_marker(path)
    command = marker["command"] if marker else None
    if command == TRAIN_COMMAND:
        return "train"
    if segment_folders(path):
        return "segment"
    if command in (REPORT_COMMAND, "ssl-video report"):
        raise UserError(f"{path} is a report already; give the folder it was made from")
    if command and command.startswith("ssl-video"):
        raise UserError(f"{path} is a run of `{command}`; its report is `ssl-video report {path} --out DIR`")
    if command:
        raise UserError(f"{path} was written by `{command}`, which has no report; give a folder written by "
                       "`vos segment` or `vos train`, or a results folder with --davis-root/--root")
    if any(p.is_dir() and any(p.glob("*.png")) for p in path.iterdir()):
        raise UserError(f"{path} holds result PNGs but no {MARKER} of `vos segment`; to report their scores "
                       "give the ground truth: --davis-root ROOT (DAVIS, vos synth) or --root ROOT (YouTube-VIS)")
    raise UserError(f"{path} is not a folder written by `vos segment` or `vos train` (no {MARKER}) nor a "
                   "results folder of <sequence>/<frame>.png; give one of those")


def write_vos_report(path: str | Path, out: str | Path, evaluation: EvaluationSource | None = None,
                     workers: int | None = None, overwrite: bool = False, progress: bool = True,
                     command_line: str = "") -> tuple[str, Path]:
    """Write the report of ``path`` to ``out/index.html``; returns (kind, page path)."""
    from vos.infra.outputs import resolve_path
    from vos.infra.report_page import check_report_out, write_report

    path = resolve_path(Path(path))
    kind = recognise(path, evaluation)
    if kind == "train":
        from vos.infra.run_report import write_run_report

        return kind, write_run_report(path, out, REPORT_COMMAND, (TRAIN_COMMAND,), overwrite, command_line)[1]
    inputs = [path] + [resolve_path(Path(p)) for p in
                       ((evaluation.davis_root, evaluation.root) if evaluation else ()) if p is not None]
    check_report_out(resolve_path(Path(out)), inputs, REPORT_COMMAND, overwrite)  # before any scoring
    if kind in ("davis", "synth", "ytvis"):
        build = _evaluation_builder(kind, path, evaluation, workers, progress, command_line)
    else:
        build = _segmentation_builder(path, progress, command_line)
    return kind, write_report(out, REPORT_COMMAND, build, inputs, overwrite)


def _evaluation_builder(kind: str, results: Path, ev: EvaluationSource, workers, progress, command_line):
    from vos.infra.report_page import Provenance, newest_mtime
    from vos.report.evaluation import (add_strips, davis_data, evaluation_page, results_pngs_present,
                                       ytvis_data)
    from vos.report.segmentation import segment_folders

    results_pngs_present(results)
    if kind == "ytvis":
        root = Path(ev.root)
        data = ytvis_data(root, results, ev.annotations, ev.videos, ev.video_list, workers, progress)
        settings = {"root": str(root), "annotations": ev.annotations}
    else:
        root = Path(ev.davis_root)
        data = davis_data(root, results, ev.task, ev.year, ev.subset, ev.matching, workers, progress,
                          ev.sequences, synth=kind == "synth")
        settings = {"davis_root": str(root), "task": ev.task if kind == "davis" else "unsupervised",
                    "year": ev.year if kind == "davis" else 2017, "set": ev.subset, "matching": ev.matching}
    provenance = Provenance(f"results scored as vos eval {kind} scores them", results,
                            command="vos segment" if segment_folders(results) else "",
                            settings=settings, written=newest_mtime(p for p in results.iterdir()),
                            report_command=command_line or REPORT_COMMAND)

    def build(assets):
        if kind == "ytvis":
            add_strips(data, assets, root / "JPEGImages", None, results, _ytvis_truth(root, ev), progress)
        else:
            from vos.eval.davis import annotation_folder

            task = ev.task if kind == "davis" else "unsupervised"
            add_strips(data, assets, root / "JPEGImages" / "480p", root / annotation_folder(task) / "480p", results,
                       progress=progress)
        return evaluation_page(data, provenance)
    return build


def _ytvis_truth(root: Path, ev: EvaluationSource):
    """``video -> (frames, labels T H W)`` of a YouTube-VIS root (PNG annotations or the JSON file)."""
    from vos.eval.ytvis import json_ground_truth, load_json_annotations, png_ground_truth

    if ev.annotations is None:
        def truth(name):
            gt = png_ground_truth(root / "Annotations" / name, name)
            return gt.frames, gt.labels
        return truth
    path = Path(ev.annotations)
    path = path if path.is_file() or not (root / path).is_file() else root / path
    data = load_json_annotations(path)

    def truth(name):
        gt = json_ground_truth(data, name, str(path))
        return gt.frames, gt.labels
    return truth


def _segmentation_builder(path: Path, progress: bool, command_line: str):
    from vos.infra.report_page import Provenance, newest_mtime
    from vos.report.segmentation import segment_folders, segmentation_page

    folders = segment_folders(path)
    marker = read_marker(folders[0]) or {}
    settings = marker.get("settings") or {}
    videos = ", ".join(f.name for f in folders[:5])
    provenance = Provenance(f"vos segment output ({len(folders)} video{'s' if len(folders) > 1 else ''}: "
                            f"{videos}{', …' if len(folders) > 5 else ''})", path, command="vos segment",
                            settings=settings, written=newest_mtime(f / MARKER for f in folders),
                            report_command=command_line or REPORT_COMMAND)

    def build(assets):
        return segmentation_page(path, folders, assets, provenance, progress)
    return build
