"""vos.segment.overlay: palette blending and contours."""

from __future__ import annotations

import numpy as np
import pytest

from vos.infra.errors import UserError
from vos.segment.overlay import blend, object_contours
from vos.palette import davis_palette


def test_blend_hand_computed():
    frame = np.full((4, 5, 3), 100, np.uint8)
    frame[0, 0] = (1, 2, 3)
    labels = np.zeros((4, 5), np.int64)
    labels[1:3, 1:3] = 1  # palette[1] = (128, 0, 0)
    labels[3, 4] = 2      # palette[2] = (0, 128, 0)
    out = blend(frame, labels, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    np.testing.assert_array_equal(out[1:3, 1:3].reshape(-1, 3), [[114, 50, 50]] * 4)
    np.testing.assert_array_equal(out[3, 4], [50, 114, 50])
    background = labels == 0
    np.testing.assert_array_equal(out[background], frame[background])  # untouched, bit for bit
    np.testing.assert_array_equal(blend(frame, labels, alpha=0.0), frame)
    np.testing.assert_array_equal(blend(frame, labels, alpha=1.0)[labels > 0], davis_palette()[labels[labels > 0]])


def test_contours_are_the_object_border():
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 3
    border = object_contours(labels)
    assert border.sum() == 16  # the ring of a 5x5 square
    assert not border[2:5, 2:5].any() and not border[labels == 0].any()
    frame = np.full((7, 7, 3), 200, np.uint8)
    out = blend(frame, labels, alpha=0.5, contours=True)
    np.testing.assert_array_equal(out[border], np.zeros((16, 3)))
    np.testing.assert_array_equal(out[3, 3], np.rint(0.5 * 200 + 0.5 * davis_palette()[3]).astype(np.uint8))


def test_blend_rejects_bad_input():
    frame = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(UserError, match=r"labels \(4, 4\) do not match the frame size \(4, 5\)"):
        blend(frame, np.zeros((4, 4), int))
    with pytest.raises(UserError, match="frame must be uint8"):
        blend(frame.astype(np.float32), np.zeros((4, 5), int))
    with pytest.raises(UserError, match="alpha must lie in"):
        blend(frame, np.zeros((4, 5), int), alpha=1.5)
