"""Clip sampling, clip-wide augmentation and the feature cache of `vos train`."""

import numpy as np
import pytest
import torch

from tests.helpers.vos_train import SIZE, make_frame_folders
from vos.infra.distributed import DistContext
from vos.infra.errors import UserError
from vos.train.config import AugmentConfig
from vos.train.data import (ClipSampler, FeatureCache, PhotometricParams, TrainingVideos, apply_photometric,
                            clip_indices, frame_tokens, normalize, resize_frames, resolve_video_root,
                            sample_clip_indices)

CTX = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def backbone(tiny_random_backbone):
    return tiny_random_backbone


def test_clip_indices_centred_with_gap():
    assert clip_indices(20, 3, 4, centre=10) == [6, 10, 14]
    assert clip_indices(20, 4, 2, centre=10) == [8, 10, 12, 14]


def test_sampled_clips_stay_inside_the_video_and_cover_all_centres():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(400):
        idx = sample_clip_indices(10, 3, 4, g)  # gap 4 fits (0..8); centres 4 and 5
        assert 0 <= idx[0] and idx[-1] <= 9 and np.all(np.diff(idx) == 4)
        seen.add(idx[1])
    assert seen == {4, 5}


def test_davis_root_resolves_to_480p_frames(tmp_path):
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    assert resolve_video_root(tmp_path) == tmp_path / "JPEGImages" / "480p"
    assert resolve_video_root(tmp_path / "JPEGImages" / "480p") == tmp_path / "JPEGImages" / "480p"


def test_same_augmentation_on_every_frame():
    g = torch.Generator().manual_seed(3)
    frame = torch.rand(1, 3, 32, 40, generator=g)
    clip = torch.cat([frame, frame.flip(-1), frame])  # frames 0 and 2 identical
    cfg = AugmentConfig(grayscale_p=0.0, jitter_p=1.0, blur_p=1.0)
    params = PhotometricParams.draw(cfg, g)
    out = apply_photometric(clip, params, cfg.blur_kernel_fraction)
    assert not torch.allclose(out, clip, atol=1e-3)
    torch.testing.assert_close(out[0], out[2])
    # the whole clip transformed at once equals each frame transformed alone with the same draw
    torch.testing.assert_close(out[1:2], apply_photometric(clip[1:2], params, cfg.blur_kernel_fraction))


def test_grayscale_draw_makes_all_frames_gray():
    g = torch.Generator().manual_seed(0)
    params = PhotometricParams.draw(AugmentConfig(grayscale_p=1.0, jitter_p=0.0, blur_p=0.0), g)
    out = apply_photometric(torch.rand(3, 3, 8, 8, generator=g), params, 0.1)
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])


def test_short_videos_are_skipped_and_none_left_is_an_error(tmp_path):
    make_frame_folders(tmp_path, videos=2, frames=4)
    assert len(TrainingVideos(tmp_path, frames=3)) == 2
    with pytest.raises(UserError, match="no video has at least 5 frames"):
        TrainingVideos(tmp_path, frames=5)


def test_feature_cache_matches_backbone_and_is_reused(tmp_path, backbone):
    make_frame_folders(tmp_path / "data", videos=2, frames=5)
    videos = TrainingVideos(tmp_path / "data", frames=3)
    aug = AugmentConfig()
    cache = FeatureCache(tmp_path / "cache", videos, backbone, "test_vit_tiny16", "random", SIZE, 2, aug, 0, CTX)
    arr = np.load(tmp_path / "cache" / "000001.npy")
    assert arr.shape == (2, 5, 1 + 4 * 5, 64) and arr.dtype == np.float16
    direct = frame_tokens(backbone, normalize(resize_frames(videos.videos[1].read_frames([0, 2, 4]), SIZE)))
    torch.testing.assert_close(cache.clip(1, 0, [0, 2, 4]), direct, atol=2e-2, rtol=1e-2)
    assert not torch.allclose(cache.clip(1, 1, [0, 2, 4]), direct, atol=1e-1)  # the augmented copy differs
    # a second build reads the files instead of recomputing
    mtime = (tmp_path / "cache" / "000000.npy").stat().st_mtime_ns
    FeatureCache(tmp_path / "cache", videos, backbone, "test_vit_tiny16", "random", SIZE, 2, aug, 0, CTX)
    assert (tmp_path / "cache" / "000000.npy").stat().st_mtime_ns == mtime
    with pytest.raises(UserError, match="other settings.*size"):
        FeatureCache(tmp_path / "cache", videos, backbone, "test_vit_tiny16", "random", (32, 48), 2, aug, 0, CTX)


def test_sampler_gives_cls_plus_patch_tokens(tmp_path, backbone):
    make_frame_folders(tmp_path, videos=2, frames=6)
    sampler = ClipSampler(TrainingVideos(tmp_path, 3), backbone, SIZE, 3, 2, AugmentConfig())
    batch = sampler.batch(2, torch.Generator().manual_seed(0))
    assert batch.shape == (2, 3, 1 + 20, 64)
    again = sampler.batch(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch, again)  # a seeded generator fixes clips and augmentation
