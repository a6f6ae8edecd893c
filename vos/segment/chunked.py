"""Chunked mode (``docs/long_videos.md``): :class:`StreamedSegmentation` segments a video chunk by
chunk with the full mode's steps, :class:`ObjectMemory` links each chunk's objects to the video's
ids, and each chunk's labels are written before the next chunk is read, so that time per frame and
memory do not depend on the video's length."""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vos.cluster import cluster_streaming
from vos.infra.video_reader import VideoSource
from vos.segment.attention import attention_over_keys, key_frame_indices, reuse_first_pass
from vos.segment.objects import clusters_to_objects
from vos.segment.segmenter import VideoSegmenter, backbone_inputs, new_timings


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
            images = backbone_inputs(frames, self.input_size, segmenter.device, rules)
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
