"""The report of a results folder scored against ground truth: DAVIS J&F (``vos eval davis``), the
synthetic benchmark (``vos eval synth``: J&F and FG-ARI/mIoU/mBO) and YouTube-VIS (FG-ARI/mIoU/mBO).

The scores are computed here by the same functions as ``vos eval`` (:mod:`vos.eval`), so the page
shows exactly the numbers that command prints. Each sequence gets a strip of sampled frames:
image | ground truth | prediction in the DAVIS palette; sequences are listed worst first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vos.infra.errors import UserError
from vos.infra.progress import progress_bar
from vos.infra.report_page import ReportAssets, bar_chart, colorize, thumbnail
from vos.infra.video_reader import to_rgb_uint8
from vos.palette import davis_palette, read_label_png

STRIP_FRAMES = 6  # sampled frames per sequence strip
STRIP_THUMB = 160  # pixels, width of one frame in a strip


@dataclass
class SequenceScores:
    """One row of the per-sequence chart; ``score`` is what the chart sorts on (J&F or FG-ARI)."""

    name: str
    score: float
    columns: dict[str, float]                 # the row of the per-sequence table
    objects: list[dict] = field(default_factory=list)  # per-object rows (DAVIS)
    strip: str = ""                           # the strip's image path in the report
    strip_frames: list[str] = field(default_factory=list)
    strip_note: str = ""                      # what the strip could not show


@dataclass
class EvaluationData:
    title: str
    protocol: str
    global_columns: list[str]
    global_values: list[float]
    score_name: str                           # "J&F" or "FG-ARI"
    sequences: list[SequenceScores]           # worst first
    object_global: dict[str, float] | None = None  # FG-ARI/mIoU/mBO summary of the synthetic benchmark


def score_colour(value: float) -> str:
    """Bar colour: red below 0.5, amber below 0.75, green above (and grey for an undefined score)."""
    if not np.isfinite(value):
        return "#9aa0a6"
    return "#d0504a" if value < 0.5 else "#e0a030" if value < 0.75 else "#4c9a5e"


def sampled(frames: list[str], n: int) -> list[int]:
    """``n`` indices spread evenly over ``frames``, first and last included."""
    if len(frames) <= n:
        return list(range(len(frames)))
    return sorted({int(round(i)) for i in np.linspace(0, len(frames) - 1, n)})


def matched_colours(proposals: dict[int, int], n_objects: int, max_label: int) -> np.ndarray:
    """Lookup table prediction label -> display label: a proposal matched to object k shows in k's
    colour; unmatched proposals get colours after the objects' (so no two share one)."""
    lut = np.zeros(max(max_label, 0) + 1, dtype=np.int64)
    spare = n_objects + 1
    for label in range(1, len(lut)):
        if label in proposals:
            lut[label] = proposals[label]
        else:
            lut[label], spare = spare, spare + 1
    return np.minimum(lut, 255)


def read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return to_rgb_uint8(image)


def frame_image(folder: Path, frame: str, shape_hw: tuple[int, int]) -> np.ndarray | None:
    """The frame ``folder/<frame>.jpg`` (or .png) at the annotation's size, or None."""
    for suffix in (".jpg", ".jpeg", ".png"):
        path = folder / f"{frame}{suffix}"
        if path.is_file():
            image = read_image(path)
            if image.shape[:2] == tuple(shape_hw):
                return image
    return None


def strip_image(images: list[np.ndarray], truths: list[np.ndarray], predictions: list[np.ndarray],
                palette: np.ndarray) -> np.ndarray:
    """Three rows (image, ground truth over the image, prediction over the image), one column per
    sampled frame, 2 px white gaps."""
    rows = []
    for kind in ("image", "truth", "prediction"):
        tiles = []
        for image, truth, prediction in zip(images, truths, predictions):
            small = thumbnail(image, STRIP_THUMB)
            if kind == "image":
                tiles.append(small)
            else:
                labels = thumbnail(truth if kind == "truth" else prediction, STRIP_THUMB)
                tiles.append(colorize(labels, palette, small))
        gap = np.full((tiles[0].shape[0], 2, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1))
    gap = np.full((2, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([rows[0], gap, rows[1], gap, rows[2]], axis=0)


def davis_data(davis_root: Path, results: Path, task: str, year: int, subset: str, matching: str,
               workers: int | None, progress: bool, sequences: list[str] | None = None,
               synth: bool = False) -> EvaluationData:
    """Scores of a DAVIS (or, with ``synth``, a ``vos synth``) results folder, worst sequence first."""
    from vos.eval import evaluate_davis, evaluate_synth
    from vos.eval.davis_eval import GLOBAL_KEYS

    objects = None
    if synth:
        result = evaluate_synth(davis_root, results, subset=subset, workers=workers, progress=progress)
        davis, objects = result.davis, {v.video: v for v in result.objects.per_video}
        object_global = dict(result.objects.summary)
    else:
        davis = evaluate_davis(davis_root, results, task=task, year=year, subset=subset, matching=matching,
                               workers=workers, sequences=sequences, progress=progress)
        object_global = None
    rows = []
    for name in davis.sequences:
        scored = [s for s in davis.per_object if s.sequence == name]
        j = float(np.mean([s.j_mean for s in scored])) if scored else float("nan")
        f = float(np.mean([s.f_mean for s in scored])) if scored else float("nan")
        columns = {"J&F": (j + f) / 2, "J": j, "F": f, "objects": len(scored)}
        if objects is not None and name in objects:
            v = objects[name]
            columns.update({"FG-ARI": v.fg_ari, "mIoU": float(np.mean(v.miou)) if v.miou.size else float("nan"),
                            "mBO": float(np.mean(v.mbo)) if v.mbo.size else float("nan")})
        rows.append(SequenceScores(name, (j + f) / 2, columns, objects=[
            {"object": s.object_id, "proposal": s.proposal, "J-Mean": s.j_mean, "J-Recall": s.j_recall,
             "J-Decay": s.j_decay, "F-Mean": s.f_mean, "F-Recall": s.f_recall, "F-Decay": s.f_decay}
            for s in scored]))
    title = f"{'Synthetic benchmark' if synth else f'DAVIS-{year} {subset}'} results: {results.name}"
    return EvaluationData(title, davis.protocol, list(GLOBAL_KEYS), [davis.global_scores[k] for k in GLOBAL_KEYS],
                          "J&F", worst_first(rows), object_global)


def ytvis_data(root: Path, results: Path, annotations: str | None, n_videos: int | None, video_list: str | None,
               workers: int | None, progress: bool) -> EvaluationData:
    from vos.eval import evaluate_ytvis
    from vos.eval.object_metrics import OBJECT_METRIC_KEYS

    result = evaluate_ytvis(root, results, annotations=annotations, n_videos=n_videos, video_list=video_list,
                            workers=workers, progress=progress)
    rows = []
    for v in result.per_video:
        miou = float(np.mean(v.miou)) if v.miou.size else float("nan")
        mbo = float(np.mean(v.mbo)) if v.mbo.size else float("nan")
        rows.append(SequenceScores(v.video, v.fg_ari, {"FG-ARI": v.fg_ari, "FG-ARI-per-frame": v.fg_ari_per_frame,
                                                      "mIoU": miou, "mBO": mbo, "objects": int(v.miou.size)}))
    keys = list(OBJECT_METRIC_KEYS)
    return EvaluationData(f"YouTube-VIS results: {results.name}",
                          "YouTube-VIS-2019: FG-ARI over foreground pixels, Hungarian mIoU, mBO",
                          keys, [result.summary[k] for k in keys], "FG-ARI", worst_first(rows))


def worst_first(rows: list[SequenceScores]) -> list[SequenceScores]:
    """Lowest score first; undefined scores (NaN: nothing to score) last."""
    return sorted(rows, key=lambda r: (not np.isfinite(r.score), r.score if np.isfinite(r.score) else 0.0))


def add_strips(data: EvaluationData, assets: ReportAssets, images_root: Path, truth_root: Path | None,
               results: Path, truth_of=None, progress: bool = True) -> None:
    """Give every sequence of ``data`` its strip. Ground truth is ``truth_root/<seq>/<frame>.png`` or,
    for YouTube-VIS JSON annotations, ``truth_of(seq) -> (frames, labels T H W)``."""
    palette = davis_palette()
    for row in progress_bar(data.sequences, desc="report strips", unit="seq", disable=not progress, leave=False):
        if truth_of is not None:
            frames, labels = truth_of(row.name)
            picks = sampled(frames, STRIP_FRAMES)
            truths = [labels[i] for i in picks]
        else:
            pngs = sorted((truth_root / row.name).glob("*.png"))
            frames = [p.stem for p in pngs]
            picks = sampled(frames, STRIP_FRAMES)
            truths = [np.where(lbl == 255, 0, lbl) for lbl in (read_label_png(pngs[i]) for i in picks)]
        if not picks:
            continue
        names = [frames[i] for i in picks]
        predictions = [read_label_png(results / row.name / f"{name}.png") for name in names]
        proposals = {o["proposal"]: o["object"] for o in row.objects if o.get("proposal")}
        if proposals:
            lut = matched_colours(proposals, max(o["object"] for o in row.objects),
                                  max(int(p.max()) for p in predictions))
            predictions = [lut[p].astype(np.uint8) for p in predictions]
        images = [frame_image(images_root / row.name, name, t.shape) for name, t in zip(names, truths)]
        if any(image is None for image in images):
            row.strip_note = f"no image of some frames in {images_root / row.name}: grey instead"
        images = [np.full((*t.shape, 3), 128, np.uint8) if image is None else image
                  for image, t in zip(images, truths)]
        row.strip = assets.jpeg(f"strip_{row.name}", strip_image(images, truths, predictions, palette))
        row.strip_frames = names


def evaluation_page(data: EvaluationData, provenance) -> str:
    from vos.infra.report_page import render

    names = [r.name for r in data.sequences]
    scores = [r.score for r in data.sequences]
    chart = bar_chart(names, [s if np.isfinite(s) else 0.0 for s in scores], f"{data.score_name} per sequence",
                      "seq-bar-", colour=score_colour)
    columns = list(data.sequences[0].columns) if data.sequences else []
    page_data = {"score": data.score_name, "global": dict(zip(data.global_columns, data.global_values)),
                 "sequences": [{"name": r.name, "score": None if not np.isfinite(r.score) else r.score,
                                **{k: (v if np.isfinite(v) else None) for k, v in r.columns.items()}}
                               for r in data.sequences]}
    if data.object_global:
        page_data["objects_global"] = data.object_global
    return render("evaluation.html.j2", ["vos.report"], title=data.title, provenance=provenance, ev=data,
                  chart=chart, columns=columns, data=page_data)


def results_pngs_present(results: Path) -> None:
    """A results folder holds at least one ``<seq>/<frame>.png``; else one line saying what it needs."""
    if not results.is_dir():
        raise UserError(f"{results}: results folder not found")
    for entry in sorted(os.scandir(results), key=lambda e: e.name):
        if entry.is_dir() and any(name.endswith(".png") for name in os.listdir(entry.path)):
            return
    raise UserError(f"{results}: no result PNGs (expected <sequence>/<frame>.png indexed PNGs); "
                   "give the folder that `vos segment` wrote or `vos eval` scored")
