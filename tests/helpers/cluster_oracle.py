"""Slow references of the clustering specification for the vos.cluster tests, and inputs for them.

``ref_cluster`` follows the specification literally with Python loops and numpy (one row and one
pair at a time), independently of :mod:`vos.cluster.reference`; the tests hold both library paths
against it.
"""

import numpy as np
import torch

import vos.cluster.kl_search
from vos.cluster import PROB_EPS


def ref_distance(a, b):
    """Symmetric KL of two distributions as sum (a - b)(log a - log b), logs of clamped values."""
    log_a = np.log(np.maximum(a, PROB_EPS))
    log_b = np.log(np.maximum(b, PROB_EPS))
    return float(np.sum((a - b) * (log_a - log_b)))


def ref_normalise(x):
    return x / x.sum()


def ref_greedy(rows, tau):
    """Greedy grouping, one row and one pair at a time; returns the list of group centroids."""
    group = [-1] * len(rows)
    groups = []
    for i in range(len(rows)):
        if group[i] >= 0:
            continue
        members = []
        for j in range(len(rows)):
            if group[j] < 0 and (j == i or ref_distance(rows[i], rows[j]) <= tau):
                group[j] = len(groups)
                members.append(rows[j])
        groups.append(ref_normalise(np.mean(members, axis=0)))
    return groups


def ref_cluster(attention, tau, window):
    """attention: T N K numpy -> (labels T N, centroids C K), following the spec literally."""
    num_frames, num_patches, num_keys = attention.shape
    x = attention / attention.sum(-1, keepdims=True)
    centroids = []
    for t0 in range(0, num_frames, window):
        rows = list(x[t0:t0 + window].reshape(-1, num_keys))
        averaged = []
        for i in range(len(rows)):
            neighbours = [rows[j] for j in range(len(rows)) if j == i or ref_distance(rows[i], rows[j]) <= tau]
            averaged.append(ref_normalise(np.mean(neighbours, axis=0)))
        centroids += ref_greedy(averaged, tau)
    for _ in range(10_000):
        merged = ref_greedy(centroids, tau)
        if len(merged) == len(centroids):
            break
        centroids = merged
    nearest = np.zeros((num_frames, num_patches), dtype=np.int64)
    for t in range(num_frames):
        for n in range(num_patches):
            dists = [ref_distance(x[t, n], c) for c in centroids]
            nearest[t, n] = dists.index(min(dists))  # first minimum on ties
    used = sorted(set(nearest.ravel().tolist()))
    renumber = {c: i for i, c in enumerate(used)}
    labels = np.vectorize(renumber.get)(nearest)
    return labels, np.stack([centroids[c] for c in used])


def canonical(labels):
    """Relabel by order of first occurrence, so equal partitions give equal arrays."""
    first = {}
    flat = np.asarray(labels).ravel()
    return np.array([first.setdefault(v, len(first)) for v in flat.tolist()]).reshape(np.shape(labels))


def structured_attention(num_frames, num_patches, num_keys, num_objects, concentration, seed):
    """Random attention with object structure: each patch's map is a Dirichlet draw around its
    object's prototype map. Returns (attention T N K float32, object id T N)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.dirichlet(np.full(num_keys, 0.3), size=num_objects)
    objects = rng.integers(0, num_objects, size=(num_frames, num_patches))
    attention = np.stack([[rng.dirichlet(concentration * prototypes[o] + 0.05) for o in row] for row in objects])
    return torch.tensor(attention, dtype=torch.float32), objects


# ---------------------------------------------------------------- inputs and spies of the fast-path tests

def rows_of(num_rows, num_keys, seed, concentration=20.0):
    attention, _ = structured_attention(1, num_rows, num_keys, 4, concentration, seed)
    return (attention[0] / attention[0].sum(-1, keepdim=True)).double()


def adversarial_taus(d64):
    """Thresholds within 1e-6 / 1e-9 (relative) of actual pair distances of d64."""
    values = torch.unique(d64[torch.triu_indices(*d64.shape, offset=1).unbind()])
    picks = values[torch.linspace(0, values.numel() - 1, 12).long()].tolist()
    # not the distances themselves: there the decision is float64 rounding (~1e-15), which differs
    # between any two summation orders (BLAS builds, or the pair recomputation)
    return [t * (1 + s) for t in picks for s in (1e-6, -1e-6, 1e-9, -1e-9) if t * (1 + s) > 0]


def spy(monkeypatch, name):
    """Count the calls of vos.cluster.kl_search.<name> (also those from inside the module)."""
    calls = []
    original = getattr(vos.cluster.kl_search, name)
    monkeypatch.setattr(vos.cluster.kl_search, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls
