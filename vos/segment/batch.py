"""The batch driver of `vos segment`: :func:`segment_videos` segments a video, a frame folder or a
folder of either into ``OUT/<name>/``, each process of a torchrun its own share of the videos."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from vos.infra.errors import UserError
from vos.infra.progress import progress_bar
from vos.segment.config import SegmentConfig, describe_resolution
from vos.segment.segmenter import VideoSegmenter
from vos.segment.writing import write_segmentation

# tqdm's bar with the count rounded (full mode advances by fractions of frames)
PROGRESS_FORMAT = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


@dataclass
class VideoSummary:
    name: str
    frames: int
    objects: int
    seconds: float
    out_dir: Path
    skipped: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def line(self) -> str:
        if self.skipped:
            return f"{self.name}: skipped (already in {self.out_dir})"
        fps = self.frames / self.seconds if self.seconds > 0 else float("inf")
        return (f"{self.name}: {self.frames} frames, {self.objects} objects, {self.seconds:.1f} s, "
                f"{fps:.2f} frames/s -> {self.out_dir}")


@dataclass(frozen=True)
class VideoJob:
    video: Path  # video file or frame folder
    name: str
    out_dir: Path  # OUT/<name>
    overlay: Optional[Path]  # mp4 to write, if any


def plan_jobs(videos: list[Path], out: Path, overlay: Path | None, batch: bool) -> list[VideoJob]:
    """One job per video; refuses two videos with the same name (they would share a folder)."""
    if overlay is not None and not batch and overlay.suffix.lower() != ".mp4":
        raise UserError(f"--overlay {overlay}: give a .mp4 file for a single video (a folder in batch mode)")
    jobs, seen = [], {}
    for video in videos:
        name = video.stem if video.is_file() else video.name
        if name in seen:
            raise UserError(f"{video} and {seen[name]} would both write {out / name}; rename one of them")
        seen[name] = video
        overlay_file = None if overlay is None else (overlay / f"{name}.mp4" if batch else overlay)
        jobs.append(VideoJob(video, name, out / name, overlay_file))
    return jobs


def segment_videos(input_path: str | Path, out: str | Path = "vos_output", config: SegmentConfig | None = None,
                   overlay: str | Path | None = None, skip_existing: bool = False,
                   backend: str = "auto", overwrite: bool = False, device: str = "auto") -> list[VideoSummary]:
    """Segment a video, a frame folder, or every video of a folder into ``out/<name>/*.png``.

    Before any frame is decoded, every result folder and overlay is checked (:mod:`vos.infra.outputs`):
    outside the input and outside a dataset's frames and annotations, writable, and new or an
    earlier result of ours (its marker); ``overwrite`` replaces other existing folders and files.
    ``skip_existing`` skips the videos whose folder holds our finished result of the same video;
    a folder we did not write is an error then, not "done".

    ``device``: ``auto`` (a GPU if there is one), ``cpu`` or ``cuda``. Under torchrun each process
    segments its own share of the videos on its own device; returns the summaries of this
    process's videos and prints one line per video plus a total. Process-wide settings (glibc's
    malloc, :func:`vos.memory.keep_freed_memory`) are the caller's: `vos segment` applies them.
    """
    from vos.infra.distributed import all_reduce_sum, cleanup, init_distributed, shard
    from vos.infra.video_reader import discover_videos, open_video
    from vos.segment.outputs import check_segment_jobs

    config = config or SegmentConfig()
    input_path, out = Path(input_path), Path(out)
    videos = discover_videos(input_path)
    batch = not (len(videos) == 1 and videos[0] == input_path)
    jobs = plan_jobs(videos, out, Path(overlay) if overlay is not None else None, batch)

    ctx = init_distributed(device)
    try:
        mine = shard(jobs, ctx)
        todo = check_segment_jobs(mine, input_path, batch, overwrite, announce=tqdm.write, skip_existing=skip_existing)
        summaries = [VideoSummary(job.name, 0, 0, 0.0, job.out_dir, skipped=True) for job in mine if job not in todo]
        for summary in summaries:
            tqdm.write(summary.line())
        segmenter = VideoSegmenter(config, ctx.device) if todo else None
        if segmenter is not None and ctx.is_main:
            tqdm.write(f"vos segment: {len(jobs)} video(s), backbone {segmenter.backbone_name}, {segmenter.mode}, "
                       f"input {describe_resolution(config.resolution)}, key frame every {config.key_every}"
                       + (f", compat {config.compat}" if config.compat else ""))
        failed = []  # names of the videos a batch skipped because of their errors
        for job in todo:
            start = time.perf_counter()
            try:
                source = open_video(job.video, config.stride, config.max_frames, backend=backend)
                with progress_bar(desc=job.name, unit="frame", bar_format=PROGRESS_FORMAT, position=ctx.rank,
                                  leave=False) as bar:
                    seg = segmenter.segment(source, bar)
                    write_segmentation(seg, source, job.out_dir, job.overlay, bar, overwrite=overwrite,
                                       settings=dataclasses.asdict(config))
            except UserError as exc:  # one bad video must not stop a batch: report it, go on, fail at the end
                if not batch:
                    raise
                tqdm.write(f"{job.name}: skipped: {exc}")
                failed.append(job.name)
                continue
            summary = VideoSummary(job.name, source.num_frames, seg.num_objects, time.perf_counter() - start,
                                   job.out_dir, timings=seg.timings)
            tqdm.write(summary.line())
            summaries.append(summary)
        done = [s for s in summaries if not s.skipped]
        totals = all_reduce_sum(torch.tensor([len(done), sum(s.frames for s in done), sum(s.seconds for s in done),
                                              len(failed)], dtype=torch.float64), ctx)
        if ctx.is_main:
            n, frames, seconds, n_failed = totals.tolist()
            skipped = len(jobs) - int(n) - int(n_failed)
            tqdm.write(f"vos segment: {int(n)} video(s), {int(frames)} frames in {seconds:.1f} s of processing"
                       + (f", {skipped} skipped" if skipped else "") + (f", {int(n_failed)} failed" if n_failed else "")
                       + f"; results in {out}")
        if failed:
            raise UserError(f"{len(failed)} of {len(mine)} video(s) failed and were skipped (reasons above): "
                           f"{', '.join(failed)}; the other results are in {out}")
        return summaries
    finally:
        cleanup(ctx)
