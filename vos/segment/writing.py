"""Writing a segmentation: the label maps upsampled to the frame size, one DAVIS indexed PNG per
frame (and the overlay video), in a folder that takes its final name only once complete."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vos.infra.video_reader import VideoSource
from vos.palette import write_label_png
from vos.segment.chunked import StreamedSegmentation
from vos.segment.segmenter import Segmentation


# zlib level of the result PNGs: label maps compress well at any level, and level 1 writes a 720p
# map in under half the time of PIL's default 6, for files about 1.4 times as large
# (docs/benchmarks.md#whole-process-against-the-bare-backbone)
RESULT_PNG_COMPRESS_LEVEL = 1


def nearest_repeats(size: int, out_size: int) -> np.ndarray:
    """How many times nearest-neighbour resizing from ``size`` to ``out_size`` samples each source
    index: the counts of the indices ``F.interpolate(mode="nearest")`` picks (size,)."""
    picked = F.interpolate(torch.arange(size, dtype=torch.float32).view(1, 1, size), size=out_size, mode="nearest")
    return np.bincount(picked.view(-1).long().numpy(), minlength=size)


def upsample_labels(objects: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upsampling of (n, h, w) label maps to (n, height, width) uint8, as
    ``F.interpolate(mode="nearest")`` does it, by repeating rows and columns (the source indices
    it picks never decrease) in uint8 instead of interpolating in float32."""
    n, h, w = objects.shape
    rows = np.repeat(objects.numpy().astype(np.uint8, copy=False), nearest_repeats(h, height), axis=1)  # n height w
    return np.repeat(rows, nearest_repeats(w, width), axis=2)  # n height width


def write_segmentation(seg: Segmentation | StreamedSegmentation, source: VideoSource, out_dir: Path,
                       overlay: Path | None = None, progress: tqdm | None = None, chunk: int = 16,
                       overwrite: bool = False, settings: dict | None = None) -> None:
    """Write ``out_dir/<frame name>.png`` for every frame (and the overlay mp4), atomically per video.

    PNGs go to ``<out_dir>.partial`` first, marked from its creation as unfinished (an earlier one
    is removed only if it is ours); the folder is renamed to ``out_dir`` once complete, so an
    interrupted run never leaves a folder that looks finished. The result carries the marker
    :data:`vos.infra.outputs.MARKER` (finished, video, frame count, ``settings``, mode, seconds per stage); an existing ``out_dir`` is
    replaced only if it is an earlier result (or with ``overwrite``), see :mod:`vos.infra.outputs`. A
    :class:`StreamedSegmentation` is computed here, chunk by chunk, each chunk written before the
    next is computed (its own progress drives the bar).
    """
    from vos.infra.outputs import replace_output_dir
    from vos.infra.video_writer import VideoWriter
    from vos.segment.outputs import SEGMENT_COMMAND, is_result_file, start_partial_result
    from vos.segment.overlay import OVERLAY_COMMENT, blend

    write_seconds = 0.0
    partial = start_partial_result(out_dir, source.path)
    names = source.frame_names
    if isinstance(seg, StreamedSegmentation):
        label_chunks = seg.label_chunks()
    else:
        bar = progress if progress is not None else tqdm(disable=True)
        bar.set_postfix_str("writing", refresh=False)
        label_chunks = (seg.objects[t0:t0 + chunk] for t0 in range(0, source.num_frames, chunk))
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(overlay, fps=source.fps, comment=OVERLAY_COMMENT)) if overlay else None
        frames_iter = (frame for frames in source.iter_chunks(chunk) for frame in frames) if writer else None
        t = 0
        for objects in label_chunks:
            start = time.perf_counter()
            labels = upsample_labels(objects, source.height, source.width)
            for label in labels:
                write_label_png(partial / f"{names[t]}.png", label, RESULT_PNG_COMPRESS_LEVEL)
                if writer:
                    writer.write(blend(next(frames_iter), label))
                t += 1
            write_seconds += time.perf_counter() - start
    seg.timings["write"] = write_seconds
    # mode and seconds per stage are for `vos report`'s summary of the run
    replace_output_dir(partial, out_dir, SEGMENT_COMMAND, overwrite, writes=is_result_file,
                       video=str(Path(source.path).resolve()), frames=source.num_frames, settings=settings or {},
                       mode="chunked" if isinstance(seg, StreamedSegmentation) else "full",
                       timings={k: round(v, 3) for k, v in seg.timings.items()})
