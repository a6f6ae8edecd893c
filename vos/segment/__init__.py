"""Video object segmentation (`vos segment`): DINO keys → spatio-temporal attention → hierarchical
clustering → masks. One module per step:

* :mod:`~vos.segment.config`: the settings (:class:`SegmentConfig`) and the backbone input size rule;
* :mod:`~vos.segment.conventions`: this toolkit's inference conventions, or the SSL-UVOS release's
  (``--compat ssl-uvos``);
* :mod:`~vos.segment.segmenter`: the full mode (:class:`VideoSegmenter`, steps 1-4 below);
* :mod:`~vos.segment.attention`: the key frames, and each patch's attention over their patches;
* :mod:`~vos.segment.objects`: cluster ids → object ids;
* :mod:`~vos.segment.chunked`: the chunked mode for long videos (:class:`StreamedSegmentation`,
  :class:`ObjectMemory`);
* :mod:`~vos.segment.writing`: label maps → PNGs per frame (and the overlay video);
* :mod:`~vos.segment.overlay`: label maps blended onto frames;
* :mod:`~vos.segment.outputs`: where `vos segment` may write, checked before any frame is decoded;
* :mod:`~vos.segment.batch`: :func:`segment_videos`, the driver behind `vos segment`.

Pipeline for one video (T frames, N = h·w patches per frame, C channels):

1. frames are decoded in chunks, resized, and passed through the frozen DINO ViT; only the
   last-layer keys are kept (T, N, C);
2. the block's LN1 + query/key projections give queries for every patch of every frame and keys
   for the patches of the key frames (every ``key_every``-th frame, at least one);
3. attention of every patch over the K = (#key frames)·N key patches, averaged over heads, is
   computed one clustering window at a time (never the (T·N)×(T·N) matrix, nor the (T, N, K)
   tensor), so peak memory grows linearly with T;
4. :func:`vos.cluster.cluster_streaming` clusters those maps; :mod:`vos.segment.objects` turns
   clusters into DAVIS object ids; label maps are upsampled (nearest) to the original frame size.

Steps 1-4 run on the backbone's device: on a GPU the attention and the clustering stay there (the
clustering's reference path, :mod:`vos.cluster.reference`); on the CPU the clustering takes its
fast path (:mod:`vos.cluster.fast`). Both give the same partition.

That is the ``full`` mode, whose key set, and so cost per frame, grows with T. Longer videos
(``mode="auto"`` above ``full_max_frames`` frames, or ``mode="chunked"``) are segmented chunk by
chunk (:class:`StreamedSegmentation`, ``docs/long_videos.md``): steps 1-4 on ``chunk_frames``
frames with the key frames of that chunk, then the chunk's objects are linked to the video's
objects through a memory of object prototypes (:class:`ObjectMemory`), and the chunk's labels are
written before the next chunk is read.
"""

from __future__ import annotations

import importlib
from typing import Any

# The names importable from vos.segment (every name its single module defined in version 0.2, and
# SegmentConfig) and the module of each. They are loaded on first use, so that importing
# vos.segment.config, as the flags of `vos segment --help` do, imports no torch.
_MODULE_OF = {
    **dict.fromkeys(["SegmentConfig"], "config"),
    **dict.fromkeys(["VideoSegmenter", "Segmentation", "new_timings", "FULL_MODE_BACKBONE_SHARE"], "segmenter"),
    **dict.fromkeys(["key_frame_indices", "attention_over_keys", "reuse_first_pass", "ATTENTION_BLOCK_ROWS",
                     "UNSHIFTED_LOGIT_BOUND"], "attention"),
    **dict.fromkeys(["StreamedSegmentation", "ObjectMemory", "chunk_batches", "frame_digest", "timed"], "chunked"),
    **dict.fromkeys(["write_segmentation", "upsample_labels"], "writing"),
    **dict.fromkeys(["segment_videos", "VideoSummary", "VideoJob", "plan_jobs", "PROGRESS_FORMAT"], "batch"),
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
