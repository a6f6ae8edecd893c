"""Tunables of the CPU fast path (:mod:`vos.cluster.fast`), in one frozen object passed in.

None of them changes a result: every decision is the float64 one whatever the values (the tests
run the clustering with extreme values against the reference). They trade memory and work
between the paths that reach the same decisions; the defaults suit the segmentation sizes
(N = 600 patches, K = 3000 keys, windows of 3 frames).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """Work and memory trade-offs of the fast path; the partition does not depend on them."""

    # Rows per chunk of the neighbourhood averaging: bounds the chunk x rows distance matrix.
    neighbour_chunk_rows: int = 10_000
    # Neighbour sets denser than this share are summed by a dense product, sparser ones by a
    # sparse one (a sparse product pays per stored element, a dense one per element).
    sparse_neighbours_max_density: float = 1 / 16
    # Rows whose distances the greedy grouping computes per matrix product: the first block has
    # greedy_block_rows rows, every further block twice as many, up to greedy_max_block_rows.
    greedy_block_rows: int = 64
    greedy_max_block_rows: int = 256
    # If more than this share of a block's pairs lies within the float32 bound of tau, the whole
    # block is computed in float64 (one product is then cheaper than gathering many pairs).
    repair_max_fraction: float = 0.05
    # Elements (pairs x K) per batch of the float64 recomputation of borderline pairs.
    repair_batch_elements: int = 2 ** 21
    # Pruning with key groups: the keys are split into this many groups, and pairs whose grouped
    # distance (a certified lower bound of theirs) exceeds tau are never computed in full.
    key_groups: int = 128
    # Pruning runs when there are at least this many keys per group (below, the dense products
    # are cheap).
    prune_min_keys_per_group: int = 8
    # If more than this share of a block's pairs survives the lower bound, the block takes the
    # dense products (a sampled product per pair costs several times a dense product's share).
    prune_max_fraction: float = 0.2
    # Rows whose lower bounds are computed first, to skip the full bound when it would prune too little.
    prune_probe_rows: int = 64
    # Rows per block of the self bound (self_candidate_pairs): bounds its block x M temporaries.
    self_bound_block_rows: int = 128
    # When many pairs survive the bound, rows linked by them (connected components) are compared
    # densely block by block if that costs at most this share of the full product; small
    # components are packed together into blocks of up to component_block_rows rows.
    component_max_work: float = 0.5
    component_block_rows: int = 256
    # Rows sampled to learn the key groups, and Lloyd iterations of their k-means.
    key_group_sample_rows: int = 256
    key_group_iterations: int = 4
    # Windows in flight at most with several threads: each holds a window's attention, its
    # float32 maps and its averaged rows, so memory grows with the workers.
    max_window_workers: int = 4
    # Memory the windows in flight may take together: fewer workers run when one window's share
    # (about WINDOW_BYTES_PER_ENTRY bytes per attention entry: its attention, float32 logs,
    # averaged rows and their float32 copies) times the workers would exceed it. At ViT-S/8
    # (M = 7,200 rows, K = 12,000 keys at T = 50) a window takes about 2 GB: one worker.
    window_memory_bytes: int = 2 ** 30


# Bytes a window in flight holds per entry of its M x K attention (see window_memory_bytes):
# float32 attention and logs (8), float64 averaged rows with float32 copies and logs (16, for
# up to M distinct averages).
WINDOW_BYTES_PER_ENTRY = 24


def window_worker_limit(settings: ClusterSettings, num_rows: int, num_keys: int) -> int:
    """Windows in flight at most: ``max_window_workers``, fewer when their memory
    (WINDOW_BYTES_PER_ENTRY per entry) would exceed ``window_memory_bytes``; at least one."""
    per_window = WINDOW_BYTES_PER_ENTRY * num_rows * num_keys
    return max(1, min(settings.max_window_workers, settings.window_memory_bytes // per_window))


DEFAULT_SETTINGS = ClusterSettings()
