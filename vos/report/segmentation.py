"""The report of ``vos segment`` results (no ground truth needed): per video an object timeline, an
animated preview of the masks over the frames, and the run's summary.

The timeline has one lane per object id, in order of first appearance; a lane is filled where the
object is present, its height the object's area over time (relative to its largest area). Long
videos are downsampled per lane into at most :data:`TIMELINE_BINS` columns, each showing the
largest area within its frames, so that one frame of presence stays visible among 10,000. Below
the lanes, an id that vanishes while another appears at the same place within
:data:`SWITCH_GAP` frames is listed and marked as a likely id switch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vos.infra.errors import UserError
from vos.infra.outputs import read_marker
from vos.infra.progress import progress_bar
from vos.infra.report_page import ReportAssets, colorize, plotted, thumbnail
from vos.infra.video_reader import natural_key
from vos.palette import davis_palette, read_label_png
from vos.segment.outputs import SEGMENT_COMMAND

TIMELINE_BINS = 800        # most columns of a timeline lane
SWITCH_GAP = 2             # frames between one id's last and another's first appearance of an id switch
SWITCH_DISTANCE = 0.15     # centroid distance of an id switch, as a share of the frame diagonal
PREVIEW_FRAMES = 48        # frames of the animated preview
PREVIEW_WIDTH = 320
PREVIEW_FPS = 8.0


@dataclass
class ObjectTrack:
    """Per-frame statistics of the label maps: ``areas`` (T, L) pixels per label, ``centroids`` (T, L, 2)
    (y, x) of each label, NaN where absent; labels 0..L-1 (0 background)."""

    frames: list[str]
    height: int
    width: int
    areas: np.ndarray
    centroids: np.ndarray

    @property
    def ids(self) -> list[int]:
        """Object ids present in some frame, in order of first appearance."""
        present = self.areas[:, 1:] > 0                                         # T L-1
        ids = [i + 1 for i in range(present.shape[1]) if present[:, i].any()]
        return sorted(ids, key=lambda k: int(np.argmax(self.areas[:, k] > 0)))

    def spans(self, object_id: int) -> list[tuple[int, int]]:
        """The object's runs of consecutive frames, ``(first, last)`` indices."""
        present = np.concatenate([[False], self.areas[:, object_id] > 0, [False]])
        edges = np.flatnonzero(np.diff(present.astype(np.int8)))
        return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def frame_statistics(labels: np.ndarray, n_labels: int, coords: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Areas (n_labels,) and centroids (n_labels, 2) (y, x; NaN where absent) of one label map (H, W).
    ``coords``: :func:`pixel_coordinates` of its shape, when computed once for many frames."""
    ys, xs = coords if coords is not None else pixel_coordinates(labels.shape)
    flat = labels.ravel()
    areas = np.bincount(flat, minlength=n_labels)[:n_labels].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(flat, weights=ys, minlength=n_labels)[:n_labels] / areas
        cx = np.bincount(flat, weights=xs, minlength=n_labels)[:n_labels] / areas
    return areas, np.stack([cy, cx], axis=1)


def pixel_coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (float64, flattened) of every pixel of an (H, W) map."""
    ys, xs = np.indices(shape, dtype=np.float64)
    return ys.ravel(), xs.ravel()


def read_track(folder: Path, progress: bool = True) -> ObjectTrack:
    """Statistics of every ``folder/*.png`` label map, frames in natural order."""
    pngs = sorted(folder.glob("*.png"), key=lambda p: natural_key(p.name))
    if not pngs:
        raise UserError(f"{folder}: no label PNGs; give a result folder written by `vos segment`")
    first = read_label_png(pngs[0])
    areas, centroids = [], []
    coords = pixel_coordinates(first.shape)
    for path in progress_bar(pngs, desc=f"report {folder.name}", unit="frame", disable=not progress, leave=False):
        labels = first if path == pngs[0] else read_label_png(path)
        if labels.shape != first.shape:
            raise UserError(f"{path}: label map of {labels.shape[1]}x{labels.shape[0]} (WxH) in a video of "
                           f"{first.shape[1]}x{first.shape[0]}; the folder mixes two results")
        a, c = frame_statistics(labels, 256, coords)
        areas.append(a)
        centroids.append(c)
    areas, centroids = np.stack(areas), np.stack(centroids)                     # T 256, T 256 2
    used = int(np.flatnonzero(areas.any(axis=0)).max(initial=0)) + 1
    return ObjectTrack([p.stem for p in pngs], first.shape[0], first.shape[1], areas[:, :used], centroids[:, :used])


def id_switches(track: ObjectTrack, gap: int = SWITCH_GAP, distance: float = SWITCH_DISTANCE) -> list[dict]:
    """Likely id switches: id ``a`` is last seen at frame ``t`` and id ``b`` (not seen before) first at
    ``t' in (t - gap, t + gap]`` with centroids within ``distance`` of the frame diagonal."""
    diagonal = math.hypot(track.height, track.width)
    found = []
    ids = track.ids
    for a in ids:
        for _, last in track.spans(a):
            if last == len(track.frames) - 1:
                continue
            for b in ids:
                first = track.spans(b)[0][0]
                if b == a or not (last - gap < first <= last + gap):
                    continue
                moved = float(np.linalg.norm(track.centroids[last, a] - track.centroids[first, b]))
                if moved <= distance * diagonal:
                    found.append({"from": a, "to": b, "frame": first, "frame_name": track.frames[first],
                                  "distance": moved / diagonal})
    return found


def lane_profile(areas: np.ndarray, bins: int = TIMELINE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges in frames (n+1,), largest area per bin (n,)) of one lane's areas (T,)."""
    t = len(areas)
    n = min(t, bins)
    edges = np.linspace(0, t, n + 1).round().astype(np.int64)
    return edges, np.maximum.reduceat(areas, edges[:-1])


def timeline_svg(track: ObjectTrack, switches: list[dict]) -> str:
    """The object timeline as inline SVG; lane of id ``k`` is the group ``lane-<k>``."""
    palette = davis_palette() / 255.0
    ids = track.ids
    t = len(track.frames)

    def draw(fig):
        ax = fig.add_subplot()
        for row, k in enumerate(ids):
            edges, peak = lane_profile(track.areas[:, k])
            height = 0.8 * peak / max(peak.max(), 1.0)
            present = peak > 0
            x = np.repeat(edges, 2)[1:-1]                                       # step outline
            y = np.repeat(height, 2)
            # one polygon per run of presence: where the object is absent the lane is empty
            poly = ax.fill_between(x, row + 0.4, row + 0.4 - y, where=np.repeat(present, 2),
                                   color=palette[k % 256], linewidth=0)
            poly.set_gid(f"lane-{k}")
            for a, b in _runs(present):                                         # a thin bar where present
                ax.plot([edges[a], edges[b]], [row + 0.45, row + 0.45], color=palette[k % 256], linewidth=2,
                        solid_capstyle="butt")
        for s in switches:
            row = ids.index(s["to"])
            ax.axvline(s["frame"], color="#b3261e", linestyle="--", linewidth=0.8)
            ax.annotate(f"{s['from']}→{s['to']}", (s["frame"], row), color="#b3261e", fontsize=7, ha="right",
                        va="center", xytext=(-3, 0), textcoords="offset points",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
        ax.set_yticks(range(len(ids)), [f"id {k}" for k in ids])
        ax.set_ylim(len(ids) - 0.5, -0.55)
        ax.set_xlim(0, t)
        ax.set_xlabel(f"frame (of {t})")
        ax.grid(axis="x", alpha=0.3)
    return plotted(draw, 9.0, 0.9 + 0.32 * max(len(ids), 1))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of the runs of True in ``mask`` (end exclusive)."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))


def run_summary(marker: dict, track: ObjectTrack) -> dict:
    """Frames, objects, mode, chunks, key frames, seconds and frames/s of one ``vos segment`` result."""
    from vos.segment.attention import key_frame_indices
    from vos.segment.conventions import conventions

    settings = marker.get("settings") or {}
    frames = len(track.frames)
    mode = marker.get("mode")
    if mode is None and settings:  # results written before the marker recorded the mode
        chosen = settings.get("mode", "auto")
        auto_chunked = settings.get("compat") is None and frames > settings.get("full_max_frames", frames)
        mode = "chunked" if chosen == "chunked" or (chosen == "auto" and auto_chunked) else "full"
    summary = {"video": marker.get("video", "unknown"), "frames": frames, "objects": len(track.ids),
               "mode": mode or "unknown", "size": f"{track.width}x{track.height}"}
    if settings.get("key_every"):
        rule = conventions(settings.get("compat")).key_frame_rule
        pieces = [frames] if mode != "chunked" else [min(settings["chunk_frames"], frames - s)
                                                    for s in range(0, frames, settings["chunk_frames"])]
        summary["chunks"] = len(pieces) if mode == "chunked" else 1
        summary["key frames"] = sum(len(key_frame_indices(n, settings["key_every"], rule)) for n in pieces)
    timings = marker.get("timings") or {}
    wall = sum(v for k, v in timings.items() if not k.endswith("_cpu"))
    if wall > 0:
        summary["seconds"] = round(wall, 2)
        summary["frames/s"] = round(frames / wall, 2)
        summary.update({f"{k} s": round(v, 2) for k, v in timings.items() if not k.endswith("_cpu")})
    return summary


def preview_frames(marker: dict, track: ObjectTrack, folder: Path) -> tuple[list[np.ndarray], str]:
    """Up to :data:`PREVIEW_FRAMES` frames of the masks over the video (read again from the marker's
    ``video`` with the run's stride), or over grey when the video is gone; and a note saying which."""
    from vos.infra.video_reader import open_video

    palette = davis_palette()
    picks = sorted({int(i) for i in np.linspace(0, len(track.frames) - 1, min(PREVIEW_FRAMES, len(track.frames)))})
    images, note = None, ""
    video = marker.get("video")
    settings = marker.get("settings") or {}
    if video and Path(video).exists():
        try:
            source = open_video(video, settings.get("stride", 1), settings.get("max_frames"))
            if source.num_frames == len(track.frames):
                images = source.read_frames(picks)                              # n H W 3
            else:
                note = f"the video {video} now has {source.num_frames} frames, not {len(track.frames)}; masks only"
        except UserError as exc:
            note = f"the video could not be read again ({exc}); masks only"
    else:
        note = "the video is not at its recorded place; masks only"
    frames = []
    for n, t in enumerate(picks):
        labels = read_label_png(folder / f"{track.frames[t]}.png")
        image = images[n] if images is not None else np.full((*labels.shape, 3), 96, dtype=np.uint8)
        if image.shape[:2] != labels.shape:  # masks written at another size than the frames read now
            image = np.asarray(Image.fromarray(image).resize(labels.shape[::-1], Image.Resampling.BOX))
        frames.append(colorize(thumbnail(labels, PREVIEW_WIDTH), palette, thumbnail(image, PREVIEW_WIDTH),
                               alpha=0.55, dim=0.8))
    return frames, note


@dataclass
class VideoSection:
    name: str
    summary: dict
    timeline: str
    switches: list[dict]
    lanes: list[dict]
    preview: str = ""
    preview_note: str = ""
    extra: dict = field(default_factory=dict)


def video_section(folder: Path, assets: ReportAssets, progress: bool = True) -> VideoSection:
    marker = read_marker(folder) or {}
    track = read_track(folder, progress)
    switches = id_switches(track)
    lanes = [{"id": k, "spans": [[track.frames[a], track.frames[b]] for a, b in track.spans(k)],
              "first": track.spans(k)[0][0], "last": track.spans(k)[-1][1],
              "frames_present": int((track.areas[:, k] > 0).sum()),
              "mean_area": float(track.areas[track.areas[:, k] > 0, k].mean() / (track.height * track.width))}
             for k in track.ids]
    frames, note = preview_frames(marker, track, folder)
    return VideoSection(folder.name, run_summary(marker, track), timeline_svg(track, switches), switches, lanes,
                        assets.animation(f"preview_{folder.name}", frames, PREVIEW_FPS), note)


def segment_folders(path: Path) -> list[Path]:
    """The ``vos segment`` result folders at ``path``: itself, or its sub-folders (batch output)."""
    marker = read_marker(path)
    if marker is not None and marker["command"] == SEGMENT_COMMAND:
        return [path]
    found = []
    for child in sorted(path.iterdir(), key=lambda p: natural_key(p.name)):
        child_marker = read_marker(child) if child.is_dir() else None
        if child_marker is not None and child_marker["command"] == SEGMENT_COMMAND:
            found.append(child)
    return found


def segmentation_page(path: Path, folders: list[Path], assets: ReportAssets, provenance, progress: bool) -> str:
    from vos.infra.report_page import render

    sections = [video_section(folder, assets, progress) for folder in folders]
    data = {"videos": [{"name": s.name, "summary": s.summary, "switches": s.switches, "lanes": s.lanes}
                       for s in sections]}
    return render("segmentation.html.j2", ["vos.report"], title=f"Segmentation: {path.name}",
                  provenance=provenance, videos=sections, data=data)
