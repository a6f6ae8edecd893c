"""The settings of `vos segment` (vos.segment.config): the backbone input size rule, and where they are checked."""

import dataclasses
import math

import pytest
import torch

from vos.infra.errors import UserError
from vos.segment.config import DEFAULT_RESOLUTION, SegmentConfig, input_resolution


@pytest.mark.parametrize("frame,expected", [
    ((480, 854), (320, 480)),    # DAVIS 480p, as the protocol (and every earlier run) has it
    ((480, 910), (320, 480)),    # the wider DAVIS sequences
    ((480, 1152), (320, 480)),
    ((480, 640), (320, 480)),    # 4:3 is landscape
    ((1080, 1920), (320, 480)),
    ((1920, 1080), (480, 320)),  # portrait phone video: the transposed default
    ((640, 480), (480, 320)),
    ((100, 4000), (320, 480)),   # any landscape
])
def test_landscape_gets_the_default_and_portrait_its_transpose(frame, expected):
    assert input_resolution(*frame) == expected


@pytest.mark.parametrize("frame", [(500, 500), (480, 600), (600, 480), (480, 639)])
def test_near_square_keeps_aspect_at_the_default_pixel_count(frame):
    height, width = input_resolution(*frame)
    # hand-computed: scale s with s^2 * h * w = 320 * 480, then rounded
    s = math.sqrt(320 * 480 / (frame[0] * frame[1]))
    assert (height, width) == (round(frame[0] * s), round(frame[1] * s))
    assert abs(width / height - frame[1] / frame[0]) < 0.01
    assert abs(height * width - 320 * 480) < height + width
    assert input_resolution(500, 500) == (392, 392)


def test_explicit_resolution_is_used_as_given():
    assert input_resolution(1920, 1080, (320, 480)) == (320, 480)
    assert input_resolution(480, 854, (64, 96)) == (64, 96)
    assert SegmentConfig().resolution is None and DEFAULT_RESOLUTION == (320, 480)
    with pytest.raises(UserError, match="--resolution takes two positive sizes"):
        SegmentConfig(resolution=(0, 10)).validate()


@pytest.mark.parametrize("frame_size,grid", [((96, 128), (20, 30)), ((128, 96), (30, 20))])
def test_segment_uses_the_rule_per_video(tmp_path, frame_size, grid):
    from tests.helpers.vos_clips import moving_square_frames, write_frame_folder
    from vos.segment import VideoSegmenter
    from vos.infra.video_reader import open_video

    folder = write_frame_folder(tmp_path / "clip", moving_square_frames(2, frame_size))
    segmenter = VideoSegmenter(SegmentConfig(backbone="test_vit_tiny16", weights="random", key_every=2))
    source = open_video(folder)
    assert segmenter.input_size(source) == (grid[0] * 16, grid[1] * 16)
    with torch.no_grad():
        objects = segmenter.segment(source).objects
    assert tuple(objects.shape) == (2, *grid)  # T h w on the patch grid: portrait stays portrait


def test_settings_are_checked_once_where_they_enter_the_library(tmp_path, monkeypatch):
    """A SegmentConfig is checked when made (defaults < --config file < flags, or code, or
    dataclasses.replace); segmenting with it checks nothing again."""
    from tests.helpers.vos_clips import moving_square_frames, write_frame_folder
    from vos.infra.config import load_config
    from vos.segment import segment_videos

    with pytest.raises(UserError, match="--key-every must be >= 1, got 0"):
        load_config(SegmentConfig, overrides={"key_every": 0})
    with pytest.raises(UserError, match="--tau must be > 0, got 0.0"):
        dataclasses.replace(SegmentConfig(), tau=0.0)
    config = SegmentConfig(backbone="test_vit_tiny16", weights="random", resolution=(32, 48), key_every=2)
    monkeypatch.setattr(SegmentConfig, "validate", lambda self: pytest.fail("the settings were checked again"))
    folder = write_frame_folder(tmp_path / "clip", moving_square_frames(3, (32, 48)))
    (summary,) = segment_videos(folder, tmp_path / "out", config, device="cpu")
    assert summary.frames == 3 and len(list((tmp_path / "out" / "clip").glob("*.png"))) == 3
