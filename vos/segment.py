"""Video object segmentation: DINO keys → spatio-temporal attention → hierarchical clustering → masks.

Pipeline for one video (T frames, N = h·w patches per frame, C channels):

1. frames are decoded in chunks, resized, and passed through the frozen DINO ViT; only the
   last-layer keys are kept (T, N, C);
2. the block's LN1 + query/key projections give queries for every patch of every frame and keys
   for the patches of the key frames (every ``key_every``-th frame, at least one);
3. attention of every patch over the K = (#key frames)·N key patches, averaged over heads, is
   computed one clustering window at a time (never the (T·N)×(T·N) matrix, nor the (T, N, K)
   tensor), so peak memory grows linearly with T;
4. :func:`vos.cluster.cluster_streaming` clusters those maps; :mod:`vos.masks` turns clusters into
   DAVIS object ids; label maps are upsampled (nearest) to the original frame size.

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

import contextlib
import dataclasses
import hashlib
import itertools
import math
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vos.cluster import cluster_streaming
from vos.compat import conventions
from vos.infra.errors import UserError
from vos.infra.progress import progress_bar
from vos.infra.video_reader import VideoSource
from vos.masks import clusters_to_objects
from vos.models.backbone import build_backbone, model_input_size, preprocess_frames, weights_tag
from vos.models.block import resolve_block, training_free_block
from vos.palette import write_label_png
from vos.segment_config import DEFAULT_BACKBONE, SegmentConfig, describe_resolution, input_resolution



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


def key_frame_indices(num_frames: int, key_every: int, rule: str = "every") -> list[int]:
    """Frames whose patches are the keys. Rule "every": 0, key_every, 2·key_every, ... < num_frames.
    Rule "release" (SSL-UVOS): ``arange(num_frames // key_every) * key_every``, which leaves out the
    last partial interval; at least frame 0 (the release would have no keys below key_every frames)."""
    if rule == "every":
        return list(range(0, num_frames, key_every))
    if rule == "release":
        return [i * key_every for i in range(max(1, num_frames // key_every))]
    raise UserError(f"unknown key frame rule {rule!r}; choose 'every' or 'release'")


# Full mode's progress bar counts frames: a frame is this far done once through the backbone, the
# rest comes over the two clustering passes (its share of the time at T <= 100, docs/benchmarks.md#full-mode).
FULL_MODE_BACKBONE_SHARE = 0.75
# tqdm's bar with the count rounded (full mode advances by fractions of frames)
PROGRESS_FORMAT = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

# Query rows per block of attention_over_keys: a block's logits (rows x K floats, 3 MB at K = 3000)
# stay in cache through the softmax and the head sum.
ATTENTION_BLOCK_ROWS = 256
# |logit| (in base 2) up to which 2**logit needs no max shift: far from float32 over- and underflow
# (2**±126) even summed over every key, so the unshifted softmax loses no precision.
UNSHIFTED_LOGIT_BOUND = 64.0


@torch.no_grad()
def attention_over_keys(queries: torch.Tensor, keys: torch.Tensor,
                        block_rows: int = ATTENTION_BLOCK_ROWS) -> torch.Tensor:
    """Head-averaged softmax attention of queries (w, heads, N, hd) over keys (heads, K, hd) -> (w, N, K).

    Queries are pre-scaled. Blocks of ``block_rows`` query rows go through all heads
    while their logits are still in cache, instead of whole (w·N)×K matrices per head, which go to
    memory and back three times per head. The softmax is taken in base 2 on queries scaled by
    log2(e) (the same function): torch's exp2 is cheaper than its exp on CPU. Timings of both:
    docs/benchmarks.md#attention-over-key-frames. Rows whose logits are bounded by
    ``UNSHIFTED_LOGIT_BOUND`` (Cauchy-Schwarz, the usual case) skip the max shift.
    """
    w, heads, N, head_dim = queries.shape
    rows = (queries * math.log2(math.e)).permute(1, 0, 2, 3).reshape(heads, w * N, head_dim)  # heads (w·N) hd
    logit_bounds = rows.norm(dim=-1) * keys.norm(dim=-1).amax(dim=-1, keepdim=True)  # heads (w·N)
    attn = torch.zeros(w * N, keys.shape[1], dtype=queries.dtype, device=queries.device)
    logits = torch.empty(min(block_rows, w * N), keys.shape[1], dtype=queries.dtype, device=queries.device)
    for r0 in range(0, w * N, block_rows):
        block = attn[r0:r0 + block_rows]
        block_logits = logits[:block.shape[0]]  # rows K
        for h in range(heads):
            torch.matmul(rows[h, r0:r0 + block.shape[0]], keys[h].T, out=block_logits)
            if logit_bounds[h, r0:r0 + block.shape[0]].max() > UNSHIFTED_LOGIT_BOUND:
                block_logits.sub_(block_logits.amax(dim=1, keepdim=True))
            block_logits.exp2_()
            # softmax rows, and the mean over heads, in one pass
            block.addcmul_(block_logits, block_logits.sum(dim=1, keepdim=True).mul_(heads).reciprocal_())
    return attn.view(w, N, -1)


def reuse_first_pass(compute: Callable[[int, int], torch.Tensor], budget_bytes: int) -> Callable[[int, int], torch.Tensor]:
    """Wrap a window attention function so that a window's second call returns its first result.

    :func:`vos.cluster.cluster_streaming` asks for every window twice (clustering, then
    assignment). Results of first calls are kept while their total stays within ``budget_bytes``;
    a kept result is handed out (and released) on the second call, others are recomputed. Memory
    therefore stays linear in T plus at most the budget. Thread-safe; ``compute`` runs unlocked.
    """
    kept: dict[tuple[int, int], torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    used = 0
    lock = threading.Lock()  # windows may be asked for from several worker threads at once

    def window_attention(t0: int, t1: int) -> torch.Tensor:
        nonlocal used
        with lock:
            if (t0, t1) in kept:
                attention = kept.pop((t0, t1))
                used -= attention.nbytes
                return attention
        attention = compute(t0, t1)
        with lock:
            if (t0, t1) not in seen and used + attention.nbytes <= budget_bytes:  # only first results
                kept[(t0, t1)] = attention
                used += attention.nbytes
            seen.add((t0, t1))
        return attention

    return window_attention


class VideoSegmenter:
    """Holds the frozen backbone and the block; segments one :class:`VideoSource` at a time."""

    def __init__(self, config: SegmentConfig, device: torch.device | str = "cpu"):
        config.validate()
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
        :func:`vos.segment_config.input_resolution`; rounded to the patch size."""
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
            images = preprocess_frames(frames, input_size, self.device, self.conventions.normalisation,
                                       self.conventions.resize)
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

    def segment(self, source: VideoSource, progress: tqdm | None = None) -> Segmentation | StreamedSegmentation:
        """The segmentation of ``source``: a :class:`Segmentation` (full mode), or in chunked mode
        a :class:`StreamedSegmentation` that computes its label chunks as they are iterated over."""
        if self.uses_chunks(source.num_frames):
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


class ObjectMemory:
    """The objects of a video so far, as prototypes that link each chunk's objects to video ids.

    A prototype is the mean query vector (all heads, ``heads·hd`` channels) of every patch given
    that id so far; row 0 is the background. Prototypes are compared by the cosine of their
    directions from the mean of every patch seen so far: the query vectors share a common part,
    which this removes, widening the gap between same and different objects. A chunk's
    background is the video's background; each other object of the chunk (in area order) takes
    the id whose prototype is most similar to its own mean, if that similarity reaches
    ``similarity`` (the background's included: a chunk may split its background), or else a new
    id while fewer than ``max_objects`` exist (then the most similar id). Size: (max_objects + 1)
    x channels, whatever the video's length.
    """

    def __init__(self, max_objects: int, similarity: float, channels: int):
        self.max_objects = max_objects
        self.similarity = similarity
        self.sums = torch.zeros(max_objects + 1, channels, dtype=torch.float64)  # (objects + 1) C
        self.counts = torch.zeros(max_objects + 1, dtype=torch.float64)  # patches of each id
        self.num_objects = 0

    def link(self, objects: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
        """Chunk object ids (n h w uint8, 0 background) and their patches' descriptors (n h w C)
        -> the video id of every chunk id ((chunk objects + 1) uint8); the prototypes take in the chunk."""
        ids = objects.flatten().long()
        count = int(ids.max()) + 1
        rows = descriptors.reshape(ids.numel(), -1).double()
        sums = rows.new_zeros(count, rows.shape[1]).index_add_(0, ids, rows)  # (chunk objects + 1) C
        sizes = torch.bincount(ids, minlength=count).double()
        centre = (self.sums.sum(0) + sums.sum(0)) / (self.counts.sum() + ids.numel())  # C, every patch so far
        video_id = torch.zeros(count, dtype=torch.uint8)
        self._add(0, sums[0], sizes[0])
        for j in range(1, count):  # chunk ids 1.. all have patches (clusters_to_objects)
            known = F.normalize(self.sums[:self.num_objects + 1] / self.counts[:self.num_objects + 1, None] - centre, dim=1)
            similarity = known @ F.normalize(sums[j] / sizes[j] - centre, dim=0)  # background + objects so far
            best = int(similarity.argmax())
            if similarity[best] < self.similarity and self.num_objects < self.max_objects:
                self.num_objects += 1
                best = self.num_objects
            video_id[j] = best
            self._add(best, sums[j], sizes[j])
        return video_id

    def _add(self, index: int, descriptor_sum: torch.Tensor, size: torch.Tensor) -> None:
        self.sums[index] += descriptor_sum
        self.counts[index] += size


def chunk_batches(batches: Iterator[np.ndarray], chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Decoded batches of frames -> (chunk index, frames) pieces that never straddle two chunks."""
    t = 0
    for frames in batches:
        while len(frames):
            n = min(len(frames), chunk_frames - t % chunk_frames)
            yield t // chunk_frames, frames[:n]
            frames, t = frames[n:], t + n


def frame_digest(frame: np.ndarray) -> bytes:
    """A 128-bit digest of a decoded frame's pixels."""
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()


class StreamedSegmentation:
    """Chunked mode: label chunks computed while they are iterated over (:meth:`label_chunks`).

    Each chunk of ``chunk_frames`` frames is segmented as a video of its own (keys: its frames
    ``0, key_every, ...``); :class:`ObjectMemory` maps its objects to the video's ids. Frames whose
    pixels equal an earlier frame's get that frame's labels. What is kept across chunks: the
    memory ((max_objects + 1) x C) and, per distinct frame, a 16-byte digest and its labels on the
    patch grid (h·w uint8); everything else is the current chunk's. ``num_objects``,
    ``num_clusters`` (summed over chunks) and ``timings`` are final once the chunks are consumed.
    """

    def __init__(self, segmenter: VideoSegmenter, source: VideoSource, progress: tqdm | None = None):
        self.segmenter = segmenter
        self.source = source
        self.progress = progress if progress is not None else tqdm(disable=True)
        self.num_objects = 0
        self.num_clusters = 0
        self.timings = new_timings()
        self.memory: ObjectMemory | None = None
        self.input_size = segmenter.input_size(source)
        self.labels_of_frame: dict[bytes, torch.Tensor] = {}  # frame digest -> its labels (h w uint8)
        self.largest_chunk_state: dict[str, int] = {}  # bytes of every per-chunk buffer, largest chunk

    @torch.no_grad()
    def label_chunks(self) -> Iterator[torch.Tensor]:
        """Object ids on the patch grid of consecutive frames, one chunk at a time (n h w uint8)."""
        config, timings = self.segmenter.config, self.timings
        bar = self.progress
        bar.reset(total=self.source.num_frames)
        batches = timed(self.source.iter_chunks(config.batch_frames), timings, "decode")
        for _, pieces in itertools.groupby(chunk_batches(batches, config.chunk_frames), key=lambda item: item[0]):
            labels = self._segment_chunk([frames for _, frames in pieces])
            self.num_objects = self.memory.num_objects
            bar.set_postfix_str(f"{self.num_objects} objects", refresh=False)
            yield labels

    def _segment_chunk(self, pieces: list[np.ndarray]) -> torch.Tensor:
        """Frames of one chunk (in pieces of at most batch_frames) -> their video ids (n h w uint8)."""
        segmenter, config, timings = self.segmenter, self.segmenter.config, self.timings
        rules = segmenter.conventions
        keys_at = set(key_frame_indices(sum(len(frames) for frames in pieces), config.key_every, rules.key_frame_rule))
        queries, key_rows, digests = [], [], []
        for frames in pieces:
            start, start_cpu = time.perf_counter(), time.process_time()
            images = preprocess_frames(frames, self.input_size, segmenter.device, rules.normalisation, rules.resize)
            feats = segmenter.backbone(images, with_cls=False)
            timings["backbone"] += time.perf_counter() - start
            timings["backbone_cpu"] += time.process_time() - start_cpu
            start, start_cpu = time.perf_counter(), time.process_time()
            key_frames = [i for i in range(len(frames)) if len(digests) + i in keys_at]
            q, k = segmenter.block.queries_keys(feats.keys, key_frames)  # n heads N hd, (key frames) heads N hd
            queries.append(q)  # on the backbone's device: attention and clustering run there
            key_rows += list(k)
            digests += [frame_digest(frame) for frame in frames]
            timings["cluster"] += time.perf_counter() - start
            timings["cluster_cpu"] += time.process_time() - start_cpu
            self.progress.update(len(frames))
        start, start_cpu = time.perf_counter(), time.process_time()
        h, w = feats.grid
        queries = torch.cat(queries)  # n heads N hd
        keys = torch.cat(key_rows, dim=1)  # heads K hd
        attention = reuse_first_pass(lambda t0, t1: attention_over_keys(queries[t0:t1], keys),
                                     config.attention_cache_mib * 2 ** 20)
        n = queries.shape[0]
        result = cluster_streaming(attention, n, config.tau, config.window)  # on the device
        objects = clusters_to_objects(result.labels.cpu().view(n, h, w), result.centroids.cpu(), config.max_objects)
        if self.memory is None:
            self.memory = ObjectMemory(config.max_objects, config.link_similarity, queries.shape[1] * queries.shape[3])
        descriptors = queries.permute(0, 2, 1, 3).reshape(n, h, w, -1).cpu()  # n h w (heads·hd)
        labels = self.memory.link(objects, descriptors)[objects.long()]  # n h w uint8
        for i, digest in enumerate(digests):  # identical frames, identical labels
            labels[i] = self.labels_of_frame.setdefault(digest, labels[i].clone())
        self.num_clusters += result.centroids.shape[0]
        state = {"queries": queries.nbytes, "keys": keys.nbytes, "labels": labels.nbytes,
                 "cluster_labels": result.labels.nbytes, "centroids": result.centroids.nbytes,
                 "memory": self.memory.sums.nbytes}
        for name, nbytes in state.items():
            self.largest_chunk_state[name] = max(self.largest_chunk_state.get(name, 0), nbytes)
        timings["cluster"] += time.perf_counter() - start
        timings["cluster_cpu"] += time.process_time() - start_cpu
        return labels


def timed(items: Iterator, timings: dict, stage: str) -> Iterator:
    """``items``, adding the wall seconds spent producing each to ``timings[stage]``."""
    items = iter(items)
    while True:
        start = time.perf_counter()
        item = next(items, None)
        timings[stage] += time.perf_counter() - start
        if item is None:
            return
        yield item


def upsample_labels(objects: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upsampling of (n, h, w) label maps to (n, height, width) uint8."""
    up = F.interpolate(objects[:, None].float(), size=(height, width), mode="nearest")
    return up[:, 0].to(torch.uint8).numpy()


def write_segmentation(seg: Segmentation | StreamedSegmentation, source: VideoSource, out_dir: Path,
                       overlay: Path | None = None, progress: tqdm | None = None, chunk: int = 16,
                       overwrite: bool = False, settings: dict | None = None) -> None:
    """Write ``out_dir/<frame name>.png`` for every frame (and the overlay mp4), atomically per video.

    PNGs go to ``<out_dir>.partial`` first; the folder is renamed to ``out_dir`` once complete, so
    an interrupted run never leaves a folder that looks finished. The result carries the marker
    :data:`vos.infra.outputs.MARKER` (video, frame count, ``settings``); an existing ``out_dir`` is
    replaced only if it is an earlier result (or with ``overwrite``), see :mod:`vos.infra.outputs`. A
    :class:`StreamedSegmentation` is computed here, chunk by chunk, each chunk written before the
    next is computed (its own progress drives the bar).
    """
    from vos.infra.outputs import replace_output_dir
    from vos.infra.video_writer import VideoWriter
    from vos.overlay import OVERLAY_COMMENT, blend
    from vos.segment_outputs import SEGMENT_COMMAND, segment_result_owned

    write_seconds = 0.0
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
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
                write_label_png(partial / f"{names[t]}.png", label)
                if writer:
                    writer.write(blend(next(frames_iter), label))
                t += 1
            write_seconds += time.perf_counter() - start
    replace_output_dir(partial, out_dir, SEGMENT_COMMAND, overwrite, owned=segment_result_owned(source.path),
                       video=str(Path(source.path).resolve()), frames=source.num_frames, settings=settings or {})
    seg.timings["write"] = write_seconds


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
    outside the input, writable, and new or an earlier result of ours; ``overwrite`` replaces
    other existing folders and files.

    ``device``: ``auto`` (a GPU if there is one), ``cpu`` or ``cuda``. Under torchrun each process
    segments its own share of the videos on its own device; returns the summaries of this
    process's videos and prints one line per video plus a total. Process-wide settings (glibc's
    malloc, :func:`vos.memory.keep_freed_memory`) are the caller's: `vos segment` applies them.
    """
    from vos.infra.distributed import all_reduce_sum, cleanup, init_distributed, shard
    from vos.segment_outputs import check_segment_jobs
    from vos.infra.video_reader import discover_videos, open_video

    config = config or SegmentConfig()
    config.validate()
    input_path, out = Path(input_path), Path(out)
    videos = discover_videos(input_path)
    batch = not (len(videos) == 1 and videos[0] == input_path)
    jobs = plan_jobs(videos, out, Path(overlay) if overlay is not None else None, batch)

    ctx = init_distributed(device)
    try:
        mine = shard(jobs, ctx)
        todo = [job for job in mine if not (skip_existing and job.out_dir.is_dir())]
        check_segment_jobs(todo, input_path, batch, overwrite, announce=tqdm.write)
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
