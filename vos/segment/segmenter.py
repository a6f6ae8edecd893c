"""Full mode: :class:`VideoSegmenter` holds the frozen backbone and the block, and segments a video
with the keys of every key frame of the whole video (the reference method, whose cost per frame
grows with T); the videos it segments chunk by chunk go to :mod:`vos.segment.chunked`."""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from vos.cluster import cluster_streaming
from vos.cluster.settings import DEFAULT_SETTINGS, window_worker_limit
from vos.infra.errors import UserError
from vos.infra.video_reader import VideoSource
from vos.models.backbone import build_backbone, model_input_size, preprocess_frames, weights_tag
from vos.models.block import resolve_block, training_free_block
from vos.segment import footprint
from vos.segment.attention import attention_over_keys, key_frame_indices, reuse_first_pass
from vos.segment.config import DEFAULT_BACKBONE, SegmentConfig, input_resolution
from vos.segment.conventions import Conventions, conventions
from vos.segment.objects import clusters_to_objects

if TYPE_CHECKING:
    from vos.segment.chunked import StreamedSegmentation


@dataclass
class Segmentation:
    """Result for one video: object ids on the patch grid plus bookkeeping."""

    objects: torch.Tensor  # T h w uint8, 0 background, 1..num_objects
    num_objects: int
    num_clusters: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def new_timings() -> dict[str, float]:
    """Wall seconds per stage, and process CPU seconds (all threads) of the two heavy ones, which
    are steadier than wall time on a shared machine."""
    return {"decode": 0.0, "backbone": 0.0, "cluster": 0.0, "backbone_cpu": 0.0, "cluster_cpu": 0.0}


# Full mode's progress bar counts frames: a frame is this far done once through the backbone, the
# rest comes over the two clustering passes (its share of the time at T <= 100, docs/benchmarks.md#full-mode).
FULL_MODE_BACKBONE_SHARE = 0.75


def backbone_inputs(frames: np.ndarray, size: tuple[int, int], device: torch.device, rules: Conventions) -> torch.Tensor:
    """Frames (n, H, W, 3) uint8 -> the backbone's input (n, 3, h, w), resized and normalised by
    ``rules``: :func:`preprocess_frames` one frame at a time, so that the float copies at the frame's own
    size (12 bytes a pixel in float32: 25 MB for a 1080p frame; twice that in float64, ``--compat``)
    exist for one frame at a time, not for a batch. Each frame is resized alone either way: the result is the same."""
    return torch.cat([preprocess_frames(frames[i:i + 1], size, device, rules.normalisation, rules.resize)
                      for i in range(len(frames))])


class VideoSegmenter:
    """Holds the frozen backbone and the block; segments one :class:`VideoSource` at a time."""

    def __init__(self, config: SegmentConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.conventions = conventions(config.compat)
        block = None
        self.backbone_name, weights = config.backbone or DEFAULT_BACKBONE, config.weights
        if config.block is not None:
            block, self.backbone_name, weights = resolve_block(config.block, config.backbone, config.weights)
        self.backbone = build_backbone(self.backbone_name, weights).to(self.device)
        dim = self.backbone.dim
        if block is None:
            self.block = training_free_block(dim)
            self.mode = "training-free (identity query/key projections)"
        else:
            if block.dim != dim:
                raise UserError(f"{config.block}: block dim {block.dim} does not match the backbone dim {dim}")
            if block.backbone_weights != weights_tag(weights):
                warnings.warn(f"block {config.block} was trained with backbone weights "
                              f"{block.backbone_weights}, now running with {weights_tag(weights)}")
            release = ", SSL-UVOS release" if block.has_encoder else ""
            self.mode = f"trained block ({Path(config.block).name}{release}, iteration {block.iteration})"
            self.block = block.build()
        self.block = self.block.to(self.device).eval()

    def input_size(self, source: VideoSource) -> tuple[int, int]:
        """Backbone input (H, W) for ``source``: the configured resolution, else the aspect rule of
        :func:`vos.segment.config.input_resolution`; rounded to the patch size."""
        resolution = input_resolution(source.height, source.width, self.config.resolution)
        return model_input_size(resolution, self.backbone.patch_size)

    @torch.no_grad()
    def _queries_and_keys(self, source: VideoSource, progress: tqdm, timings: dict):
        """Per-frame queries (T, heads, N, hd), key-frame keys (heads, K, hd) and the patch grid.

        The block's LN and projections are the first step of its attention, and are timed with it
        (``cluster``); ``backbone`` is the frozen ViT (with the frames' resizing)."""
        keys_at = set(key_frame_indices(source.num_frames, self.config.key_every, self.conventions.key_frame_rule))
        input_size = self.input_size(source)
        queries, key_rows = [], []
        t = 0
        chunks = source.iter_chunks(self.config.batch_frames)
        while True:
            start = time.perf_counter()
            frames = next(chunks, None)
            timings["decode"] += time.perf_counter() - start
            if frames is None:
                break
            start, start_cpu = time.perf_counter(), time.process_time()
            images = backbone_inputs(frames, input_size, self.device, self.conventions)
            feats = self.backbone(images, with_cls=False)
            timings["backbone"] += time.perf_counter() - start
            timings["backbone_cpu"] += time.process_time() - start_cpu
            start, start_cpu = time.perf_counter(), time.process_time()
            key_frames = [i for i in range(len(frames)) if t + i in keys_at]
            q, k = self.block.queries_keys(feats.keys, key_frames)  # n heads N hd, (key frames) heads N hd
            queries.append(q)  # on the backbone's device: attention and clustering run there
            key_rows += list(k)
            timings["cluster"] += time.perf_counter() - start
            timings["cluster_cpu"] += time.process_time() - start_cpu
            t += len(frames)
            progress.update(len(frames) * FULL_MODE_BACKBONE_SHARE)
        keys = torch.cat(key_rows, dim=1)  # heads K hd
        return torch.cat(queries), keys, feats.grid

    def uses_chunks(self, num_frames: int) -> bool:
        """Whether a video of ``num_frames`` frames is segmented chunk by chunk (config.mode). With
        ``compat`` set, auto is full mode at any length: the release segments the whole video."""
        if self.config.mode == "auto":
            return self.config.compat is None and num_frames > self.config.full_max_frames
        return self.config.mode == "chunked"

    def full_mode_shape(self, num_frames: int, source: VideoSource) -> footprint.FullModeShape:
        """The sizes that set the full mode's memory for the first ``num_frames`` frames of ``source``."""
        h, w = self.input_size(source)
        patches = (h // self.backbone.patch_size) * (w // self.backbone.patch_size)
        key_frames = len(key_frame_indices(num_frames, self.config.key_every, self.conventions.key_frame_rule))
        return footprint.FullModeShape(num_frames, patches, key_frames * patches, self.backbone.dim, self.config.window,
                                       min(torch.get_num_threads(), window_worker_limit(
                                           DEFAULT_SETTINGS, self.config.window * patches, key_frames * patches)),
                                       self.config.attention_cache_mib * 2 ** 20)

    def check_memory(self, source: VideoSource) -> None:
        """Before any frame is decoded: a one-line error when the full mode on the CPU would need more
        memory than is available (:mod:`vos.segment.footprint`); the chunked mode needs no check."""
        if self.uses_chunks(source.num_frames) or self.device.type != "cpu":
            return
        footprint.check_full_mode_fits(self.full_mode_shape(source.num_frames, source),
                                       lambda frames: self.full_mode_shape(frames, source), str(source.path),
                                       footprint.available_memory_bytes())

    def segment(self, source: VideoSource, progress: tqdm | None = None) -> Segmentation | StreamedSegmentation:
        """The segmentation of ``source``: a :class:`Segmentation` (full mode), or in chunked mode
        a :class:`StreamedSegmentation` that computes its label chunks as they are iterated over.
        A full-mode run that cannot fit in the available memory is refused first (:meth:`check_memory`)."""
        self.check_memory(source)
        if self.uses_chunks(source.num_frames):
            from vos.segment.chunked import StreamedSegmentation  # which builds on this module

            return StreamedSegmentation(self, source, progress)
        return self.segment_full(source, progress)

    def segment_full(self, source: VideoSource, progress: tqdm | None = None) -> Segmentation:
        """Full mode: the keys of every key frame of the video for every frame (the reference)."""
        timings = new_timings()
        bar = progress if progress is not None else tqdm(disable=True)
        bar.reset(total=source.num_frames)  # one bar in frames: see FULL_MODE_BACKBONE_SHARE
        bar.set_postfix_str("features", refresh=False)
        queries, keys, (h, w) = self._queries_and_keys(source, bar, timings)
        T = queries.shape[0]

        attention = reuse_first_pass(lambda t0, t1: attention_over_keys(queries[t0:t1], keys),
                                     self.config.attention_cache_mib * 2 ** 20)

        bar_lock = threading.Lock()  # called from the clustering's worker threads

        def window_attention(t0: int, t1: int) -> torch.Tensor:
            with bar_lock:
                bar.update((t1 - t0) * (1 - FULL_MODE_BACKBONE_SHARE) / 2)
            return attention(t0, t1)

        start, start_cpu = time.perf_counter(), time.process_time()
        bar.set_postfix_str("clustering", refresh=False)
        result = cluster_streaming(window_attention, T, self.config.tau, self.config.window)  # on the device
        objects = clusters_to_objects(result.labels.cpu().view(T, h, w), result.centroids.cpu(), self.config.max_objects)
        timings["cluster"] += time.perf_counter() - start
        timings["cluster_cpu"] += time.process_time() - start_cpu
        return Segmentation(objects=objects, num_objects=int(objects.max()),
                            num_clusters=result.centroids.shape[0], timings=timings)
