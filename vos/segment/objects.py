"""From cluster ids to object ids: background choice, ranking, and the object limit.

Cluster ids carry no meaning; the output of ``vos segment`` follows DAVIS: 0 is background, 1..n
are objects. The background is the cluster covering the largest share of the frame borders over
the video (objects rarely fill the border; the scene does). The other clusters are ranked by area
(largest = 1). At most ``max_objects`` are kept (DAVIS allows 20 proposals); each surplus cluster
is merged into the kept cluster (background included) whose centroid is nearest in symmetric KL.
"""

from __future__ import annotations

import torch

from vos.cluster import symmetric_kl
from vos.infra.errors import UserError


def border_mask(h: int, w: int) -> torch.Tensor:
    """Boolean (h, w) mask of the patches on the frame border."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[0, :] = mask[-1, :] = True
    mask[:, 0] = mask[:, -1] = True
    return mask


def clusters_to_objects(labels: torch.Tensor, centroids: torch.Tensor, max_objects: int = 20) -> torch.Tensor:
    """Map cluster ids (T, h, w) int64 with centroids (C, K) to object ids (T, h, w) uint8.

    Returns object ids 0..n with n <= ``max_objects``: 0 background, 1 the largest object, ...
    """
    if max_objects < 1 or max_objects > 255:
        raise UserError(f"max_objects must lie in 1..255 (DAVIS: at most 20), got {max_objects}")
    num_clusters = centroids.shape[0]
    T, h, w = labels.shape
    area = torch.bincount(labels.flatten(), minlength=num_clusters)  # C
    on_border = labels[:, border_mask(h, w)]  # T B
    border_area = torch.bincount(on_border.flatten(), minlength=num_clusters)  # C
    background = int(torch.argmax(border_area))  # ties: the lowest id

    others = [c for c in range(num_clusters) if c != background]
    ranked = sorted(others, key=lambda c: (-int(area[c]), c))
    kept, surplus = ranked[:max_objects], ranked[max_objects:]

    object_of = torch.zeros(num_clusters, dtype=torch.uint8)
    for rank, c in enumerate(kept, start=1):
        object_of[c] = rank
    if surplus:
        targets = [background] + kept
        nearest = symmetric_kl(centroids[surplus], centroids[targets]).argmin(dim=1)
        object_of[surplus] = object_of[torch.tensor(targets)[nearest]]
    return object_of[labels]
