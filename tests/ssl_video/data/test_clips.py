"""Clip decoding (decord and PyAV), temporal sampling, augmentation consistency and the datasets."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ssl_video.data.clips as clips_mod
from ssl_video.data.clips import (KINETICS_MEAN, KINETICS_STD, LabeledClips, MultiClipVideos, PretrainClips,
                                  VideoFile, clip_indices, color_augment, normalize_clips, sample_color_jitter,
                                  uniform_clip_starts)
from ssl_video.data.splits import VideoItem
from ssl_video.image_ops import gaussian_blur
from ssl_video.synth import write_video
from tests.helpers.ssl_clips import frame_index_of, index_frames, textured_frames, write_index_video
from vos.infra.errors import UserError


def clip_frame_indices(clip: torch.Tensor) -> list[int]:
    """Frame indices of a (C, T, H, W) clip of an index video (mean grey level per frame)."""
    return [frame_index_of(float(level) * 255) for level in clip.mean(dim=(0, 2, 3))]


# ------------------------------------------------------------------------------ temporal sampling
def test_clip_indices_regular_short_and_clamped():
    assert clip_indices(100, 4, 2, start=10).tolist() == [10, 12, 14, 16]
    # 10 frames cannot hold 4 frames at stride 5 (span 16): stride drops to (10-1)//3 = 3
    assert clip_indices(10, 4, 5, start=0).tolist() == [0, 3, 6, 9]
    # 3 frames cannot hold 5 frames even at stride 1: the last frame repeats
    assert clip_indices(3, 5, 2, start=0).tolist() == [0, 1, 2, 2, 2]
    assert clip_indices(1, 3, 2, start=0).tolist() == [0, 0, 0]


def test_uniform_clip_starts():
    # 100 frames, 16 frames at stride 2 -> span 31, starts 0..69, 10 clips spaced by 69/9
    expected = np.floor(np.arange(10) * 69 / 9 + 0.5).astype(int)
    assert uniform_clip_starts(100, 16, 2, 10).tolist() == expected.tolist()
    assert uniform_clip_starts(100, 16, 2, 1).tolist() == [0]
    assert uniform_clip_starts(20, 16, 2, 3).tolist() == [0, 2, 4]  # stride 1 -> span 16, starts 0..4
    assert uniform_clip_starts(5, 16, 2, 4).tolist() == [0, 0, 0, 0]


# ------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("backend", ["torchcodec", "decord", "pyav"])
def test_video_file_decodes_the_requested_frames(tmp_path, monkeypatch, backend):
    """VideoFile reads through open_video(backend="auto"): each backend "auto" may pick."""
    import vos.infra.video_reader as video_reader

    path = write_index_video(tmp_path / "v.avi", 20, height=24, width=40)
    available = {"torchcodec": video_reader.torchcodec_available, "decord": video_reader.decord_available}
    if backend in available and not available[backend]():
        pytest.skip(f"{backend} is not installed or does not load")
    order = ["torchcodec", "decord", "pyav"]  # what "auto" tries
    for earlier in order[:order.index(backend)]:
        monkeypatch.setattr(video_reader, f"{earlier}_available", lambda: False)
    video = VideoFile(path)
    assert video._source.backend == backend
    assert len(video) == 20
    frames = video.get([7, 0, 19, 7])
    assert frames.shape == (4, 24, 40, 3) and frames.dtype == np.uint8
    assert [frame_index_of(f.mean()) for f in frames] == [7, 0, 19, 7]
    np.testing.assert_allclose(frames.astype(float), index_frames(20, 24, 40)[[7, 0, 19, 7]].astype(float), atol=3)


def test_decord_buffer_bug_falls_back_to_pyav(tmp_path):
    # decord 0.6 returns 4-channel or mis-sized frames for 48x48 MPEG-4; the reader must not.
    path = tmp_path / "v48.avi"
    write_video(path, textured_frames(6, size=48))
    frames = VideoFile(path).get([0, 5])
    assert frames.shape == (2, 48, 48, 3)
    np.testing.assert_allclose(frames.astype(float).mean(), textured_frames(2, size=48).astype(float).mean(), atol=2)


def test_video_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        VideoFile(tmp_path / "none.avi")
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(UserError, match="bad.avi: cannot decode this file as a video"):
        VideoFile(bad)


def test_video_file_reads_the_frames_of_a_cut_short_video(tmp_path):
    """The rule of vos.infra.video_reader: the frames that decode, with a warning naming the file and both counts."""
    from tests.helpers.video_files import cut_video, decodable_frames

    whole = write_index_video(tmp_path / "whole.avi", 24, height=24, width=40)
    cut = cut_video(whole, tmp_path / "cut.avi", 0.9)
    expected = decodable_frames(cut)
    assert 1 < expected < 24
    with pytest.warns(UserWarning, match=rf"cut.avi: only {expected} of the 24 frames its header announces"):
        video = VideoFile(cut)
    assert len(video) == expected
    frames = video.get(list(range(expected)))
    assert [frame_index_of(f.mean()) for f in frames] == list(range(expected))
    # the same count as `vos segment` sees
    from vos.infra.video_reader import open_video

    with pytest.warns(UserWarning, match="cut.avi: only"):
        assert open_video(cut).num_frames == expected


# --------------------------------------------------------------------------- photometric options
def test_color_augment_without_jitter_and_grayscale_only_blurs():
    flat = torch.tensor([0.8, 0.3, 0.1]).view(1, 3, 1, 1).expand(4, 3, 16, 16).contiguous()  # T C H W
    textured = torch.from_numpy(textured_frames(4, size=16)).permute(0, 3, 1, 2).float() / 255
    changed = 0
    for seed in range(30):
        torch.manual_seed(seed)
        # a blurred flat colour is the same flat colour
        torch.testing.assert_close(color_augment(flat, 16, color_jitter=0.0, grayscale=0.0), flat)
        torch.manual_seed(seed)
        out = color_augment(textured, 16, color_jitter=0.0, grayscale=0.0)
        torch.manual_seed(seed)  # the only draws left: blur or not, and its sigma
        expected = textured
        if float(torch.rand(1)) < 0.5:
            expected = gaussian_blur(textured, 16 // 10 // 2 * 2 + 1, float(torch.empty(1).uniform_(0.1, 2.0)))
        torch.testing.assert_close(out, expected.clamp(0, 1))
        torch.manual_seed(seed)
        changed += float((color_augment(flat, 16) - flat).abs().max()) > 0.05  # the reference recipe
    assert 15 <= changed <= 30  # jitter p 0.8 + grayscale p 0.2 (about 25 of 30)


def test_grayscale_probability_one_gives_grey_clips():
    clip = torch.rand(3, 3, 8, 8)
    for seed in range(5):
        torch.manual_seed(seed)
        out = color_augment(clip, 8, color_jitter=0.0, grayscale=1.0)
        torch.testing.assert_close(out[:, 0], out[:, 1])
        torch.testing.assert_close(out[:, 1], out[:, 2])


def test_color_jitter_strength_scales_the_sampled_factors():
    draws = {}
    for strength in (0.5, 1.0, 3.0):
        torch.manual_seed(7)
        draws[strength] = [sample_color_jitter(strength) for _ in range(500)]
    for (f_half, hue_half, order_half), (f_one, hue_one, order_one) in zip(draws[0.5], draws[1.0]):
        torch.testing.assert_close(f_half - 1, (f_one - 1) / 2)
        assert hue_half == pytest.approx(hue_one / 2, abs=1e-7) and order_half == order_one
        assert sorted(order_one) == [0, 1, 2, 3]
    factors = torch.stack([f for f, _, _ in draws[1.0]])
    hues = torch.tensor([h for _, h, _ in draws[1.0]])
    assert 0.6 <= float(factors.min()) < 0.62 and 1.38 < float(factors.max()) <= 1.4  # U(0.6, 1.4) at s = 1
    assert -0.1 <= float(hues.min()) < -0.095 and 0.095 < float(hues.max()) <= 0.1
    strong = torch.stack([f for f, _, _ in draws[3.0]])  # 1 +- 1.2: floored at 0 like torchvision
    assert float(strong.min()) == 0.0 and 2.1 < float(strong.max()) <= 2.2


def test_pretrain_clips_color_options(tmp_path):
    path = tmp_path / "still.avi"
    write_video(path, textured_frames(6, size=32))
    source = torch.from_numpy(textured_frames(1, size=32)[0]).float().mean((0, 1)) / 255  # mean RGB
    for strength, colour_changes in ((0.0, False), (1.0, True)):
        ds = PretrainClips([VideoItem(path, 0)], frames=4, frame_stride=1, crop=32, color_jitter=strength,
                           grayscale=0.0)
        torch.manual_seed(0)
        # mean colour of each view: crops, flips and blur move it little, the jitter a lot
        shifts = [float((view.mean((1, 2, 3)) - source).abs().max()) for _ in range(10) for view in ds[0]]
        assert (max(shifts) > 0.1) == colour_changes, shifts
    with pytest.raises(UserError, match="--color-jitter"):
        PretrainClips([VideoItem(path, 0)], frames=4, color_jitter=-0.5)
    with pytest.raises(UserError, match="--grayscale"):
        PretrainClips([VideoItem(path, 0)], frames=4, grayscale=1.5)


# ------------------------------------------------------------------------------------- datasets
def test_pretrain_clips_two_times_same_video(tmp_path, monkeypatch):
    path = write_index_video(tmp_path / "v.avi", 30)
    # Without photometric and spatial changes the grey level tells which frames a clip holds.
    monkeypatch.setattr(clips_mod, "color_augment", lambda clip, *options: clip)
    monkeypatch.setattr(clips_mod, "random_resized_crop", lambda clip, crop: clips_mod.center_resize_crop(clip, crop))
    ds = PretrainClips([VideoItem(path, -1)], frames=4, frame_stride=3, crop=16)
    torch.manual_seed(0)
    starts = []
    for _ in range(20):
        q, k = ds[0]
        for clip in (q, k):
            assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
            idx = clip_frame_indices(clip)
            assert np.diff(idx).tolist() == [3, 3, 3] and 0 <= idx[0] <= 30 - 10
        qs, ks = clip_frame_indices(q)[0], clip_frame_indices(k)[0]
        assert qs != ks  # two different times
        starts += [qs, ks]
    assert len(set(starts)) > 10  # random over the 21 possible starts


def test_pretrain_augmentation_is_the_same_on_every_frame(tmp_path):
    path = tmp_path / "still.avi"
    write_video(path, textured_frames(12, size=48))  # every frame identical
    ds = PretrainClips([VideoItem(path, 3)], frames=6, frame_stride=2, crop=32)
    torch.manual_seed(1)
    differences = []
    for _ in range(8):
        q, k = ds[0]
        for clip in (q, k):
            assert clip.shape == (3, 6, 32, 32)
            assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
            # identical frames + the same crop/flip/colour parameters on each -> identical output frames
            assert float((clip - clip[:, :1]).abs().max()) < 0.02
        differences.append(float((q - k).abs().mean()))
    assert min(differences) > 0.01  # the two views are augmented independently


def test_labeled_clips_train_and_eval(tmp_path):
    path = write_index_video(tmp_path / "v.avi", 25, height=24, width=40)
    ds = LabeledClips([VideoItem(path, 4)], frames=5, frame_stride=2, crop=16, train=True)
    clip, label = ds[0]
    assert clip.shape == (3, 5, 16, 16) and label == 4
    assert np.diff(clip_frame_indices(clip)).tolist() == [2, 2, 2, 2]
    ev = LabeledClips([VideoItem(path, 4)], frames=5, frame_stride=2, crop=16, train=False)
    a, _ = ev[0]
    b, _ = ev[0]
    assert torch.equal(a, b)  # deterministic
    assert clip_frame_indices(a) == [8, 10, 12, 14, 16]  # the middle of starts 0..16


def test_multi_clip_videos_uniform_centre_crops(tmp_path):
    frames = index_frames(28, 24, 40)
    frames[:, :, :8] = 0  # a dark band at the left edge must be cropped away by the centre crop
    path = tmp_path / "v.avi"
    write_video(path, frames)
    ds = MultiClipVideos([VideoItem(path, 2)], frames=4, frame_stride=2, crop=16, clips_per_video=5)
    clips, label = ds[0]
    assert clips.shape == (5, 3, 4, 16, 16) and clips.dtype == torch.float32 and label == 2
    expected_starts = uniform_clip_starts(28, 4, 2, 5).tolist()  # [0, 5, 11, 16, 21]
    assert [clip_frame_indices(c)[0] for c in clips] == expected_starts
    # 24x40 -> short side 16 gives 16x26.7; centre 16 columns start at column ~5 of 26 = 8 original px in
    assert float(clips[:, :, :, :, 0].min()) > 10 / 255


def test_short_video_repeats_the_last_frame(tmp_path):
    path = write_index_video(tmp_path / "short.avi", 3)
    clips, _ = MultiClipVideos([VideoItem(path, 0)], frames=5, frame_stride=2, crop=16, clips_per_video=2)[0]
    assert [clip_frame_indices(c) for c in clips] == [[0, 1, 2, 2, 2]] * 2


def test_dataset_option_errors(tmp_path):
    item = VideoItem(tmp_path / "v.avi", 0)
    with pytest.raises(UserError, match="--frames"):
        PretrainClips([item], frames=0)
    with pytest.raises(UserError, match="--frame-stride"):
        LabeledClips([item], frames=4, frame_stride=0, crop=16)
    with pytest.raises(UserError, match="--crop"):
        MultiClipVideos([item], frames=4, frame_stride=1, crop=4)
    with pytest.raises(UserError, match="video list is empty"):
        PretrainClips([])
    with pytest.raises(UserError, match="does not exist"):
        PretrainClips([item], frames=4, frame_stride=1, crop=16)[0]


def test_dataloader_with_two_workers(tmp_path):
    items = [VideoItem(write_index_video(tmp_path / f"{i}.avi", 12), i) for i in range(4)]
    loader = DataLoader(LabeledClips(items, frames=4, frame_stride=2, crop=16, train=False), batch_size=2,
                        num_workers=2)
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(2, 3, 4, 16, 16)] * 2
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 1, 2, 3]


def test_normalize_clips():
    x = torch.rand(2, 3, 4, 5, 6)
    y = normalize_clips(x)
    for c in range(3):
        torch.testing.assert_close(y[:, c], (x[:, c] - KINETICS_MEAN[c]) / KINETICS_STD[c])
    torch.testing.assert_close(normalize_clips(x[0]), y[0])  # unbatched (C, T, H, W) too
    with pytest.raises(UserError, match=r"\(\.\.\., 3, T, H, W\)"):
        normalize_clips(torch.rand(2, 4, 3, 5, 6))
