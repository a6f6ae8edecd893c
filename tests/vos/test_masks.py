"""Cluster ids to DAVIS object ids: background choice, ranking by area, the object limit."""

import pytest
import torch

from vos.infra.errors import UserError
from vos.segment.objects import border_mask, clusters_to_objects


def onehot_centroids(n):
    return torch.eye(n, dtype=torch.float64) * 0.9 + 0.1 / n


def test_border_mask():
    m = border_mask(4, 5)
    assert m.sum() == 2 * 5 + 2 * 2 and not m[1:3, 1:4].any()


def test_background_is_the_border_cluster_even_when_it_is_not_the_largest():
    labels = torch.full((2, 6, 6), 1)
    labels[:, 0, :] = labels[:, -1, :] = labels[:, :, 0] = labels[:, :, -1] = 2  # 20 border patches/frame
    labels[:, 2:4, 2:4] = 0  # 4 patches
    objects = clusters_to_objects(labels, onehot_centroids(3))
    assert objects.dtype == torch.uint8
    assert (objects[labels == 2] == 0).all()
    assert (objects[labels == 1] == 1).all() and (objects[labels == 0] == 2).all()  # 12 > 4 patches


def test_surplus_clusters_merge_into_the_nearest_kept_centroid():
    labels = torch.zeros(1, 6, 6, dtype=torch.int64)  # cluster 0: background
    labels[0, 1:3, 1:4] = 1  # 6 patches
    labels[0, 3:5, 1:3] = 2  # 4 patches
    labels[0, 4, 4] = 3  # 1 patch, centroid close to cluster 1
    centroids = onehot_centroids(4)
    centroids[3] = 0.5 * centroids[1] + 0.5 * centroids[3]
    centroids[3, 1] += 0.3
    centroids[3] /= centroids[3].sum()
    objects = clusters_to_objects(labels, centroids, max_objects=2)
    assert objects.max() == 2
    assert objects[0, 4, 4] == objects[0, 1, 1] == 1
    assert (objects[labels == 2] == 2).all()


def test_max_objects_is_checked():
    with pytest.raises(UserError, match="max_objects"):
        clusters_to_objects(torch.zeros(1, 2, 2, dtype=torch.int64), onehot_centroids(1), max_objects=0)
