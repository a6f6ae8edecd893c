"""`ssl-video test --checkpoint FILE`: finetune's test step without training, for this project's
fine-tuning checkpoints and FAME's fine-tuned I3D file."""

import json

import pytest
import torch

from ssl_video.cli import main
from ssl_video.data.clips import MultiClipVideos, VideoFile, normalize_clips
from ssl_video.data.splits import load_items
from ssl_video.evaluation import FAME_EVAL_SETTINGS, checkpoint_settings, fame_clip_starts
from ssl_video.pretrained import load_backbone, read_weights
from tests.helpers.fame_release import fixture, seeded_tensors

CLIP = ["--frames", "4", "--frame-stride", "1", "--crop", "32", "--workers", "0"]


@pytest.fixture(scope="module")
def synth(ssl_synth_data):
    # classInd order MoveRight, MoveLeft, MoveUp, ...: not the sorted order of the names
    return ssl_synth_data(classes=3, videos_per_class=6, frames=12, seed=5)


def _data(root):
    return ["--data-root", str(root), "--split-dir", str(root / "splits")]


@pytest.mark.parametrize("eval_train", [False, True])
def test_results_equal_finetunes_own_test_step(synth, tmp_path, eval_train):
    extra = ["--eval-train"] if eval_train else []
    rc = main(["finetune", *_data(synth), *CLIP, "--arch", "r3d_tiny", "--epochs", "2", "--batch-size", "4",
               "--lr", "0.05", "--clips-per-video", "3", "--out", str(tmp_path / "ft"), *extra])
    assert rc == 0
    reported = json.loads((tmp_path / "ft" / "results.json").read_text())
    # data settings, clips per video and --eval-train... only the checkpoint: they come from its config
    rc = main(["test", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--workers", "0", *extra,
               "--json", str(tmp_path / "test.json"), "--out", str(tmp_path / "tested")])
    assert rc == 0
    tested = json.loads((tmp_path / "test.json").read_text())
    # the same model and clips: each test video gets the same class as in finetune's test step
    assert (tmp_path / "tested" / "predictions.csv").read_text() == (tmp_path / "ft" / "predictions.csv").read_text()
    assert list(tested) == list(reported)[: len(tested)]
    assert {k: tested[k] for k in ("video_top1", "video_top5", "clip_top1")} == \
        {k: reported[k] for k in ("video_top1", "video_top5", "clip_top1")}
    if eval_train:
        assert tested["train_video_top1"] == reported["train_video_top1"]


def test_flags_override_the_checkpoint_settings(synth, tmp_path, capsys):
    rc = main(["finetune", *_data(synth), *CLIP, "--arch", "r3d_tiny", "--epochs", "1", "--batch-size", "4",
               "--clips-per-video", "2", "--out", str(tmp_path / "ft")])
    assert rc == 0
    capsys.readouterr()
    rc = main(["test", "--checkpoint", str(tmp_path / "ft" / "last.pt"), "--workers", "0", "--clips-per-video", "5"])
    assert rc == 0
    assert "x 5 clips" in capsys.readouterr().out
    assert checkpoint_settings(read_weights(tmp_path / "ft" / "last.pt"))["clips_per_video"] == 2


def _fame_finetuned(classes: int, seed: int = 4) -> dict:
    keys = fixture()["i3d_keys"] + [["fc.bias", [classes]], ["fc.weight", [classes, 1024]]]
    state = seeded_tensors(keys, seed)
    return {"epoch": 150, "arch": "I3D", "best_acc1": 50.0, "optimizer": {"state": {}, "param_groups": []},
            "state_dict": {f"module.{k}": v for k, v in state.items()}}


def _reference_results(path, root, protocol, frames=4, stride=2, crop=24, clips=3) -> dict:
    """The test computed by hand. Class i of the file = the i-th sorted class name. toolkit:
    MultiClipVideos' clips, logits averaged; fame: FAME eval.py's clips (windows of frames*stride
    frames at every start, floor(linspace) choice, every stride-th frame, raw centre crop),
    log_softmax averaged."""
    items, classes = load_items("ucf101", root, root / "splits", 1, "test")
    fame_index = [sorted(classes).index(name) for name in classes]       # dataset label -> file's class
    backbone, _ = load_backbone(path)
    state = torch.load(path, weights_only=True)["state_dict"]
    w, b = state["module.fc.weight"], state["module.fc.bias"]
    toolkit = MultiClipVideos(items, frames, stride, crop, clips_per_video=clips)
    video_hits = clip_hits = 0
    with torch.no_grad():
        for i, item in enumerate(items):
            if protocol == "toolkit":
                clip_batch = toolkit[i][0]                                         # n C T H W
            else:
                video = torch.from_numpy(VideoFile(item.path).get(range(len(VideoFile(item.path))))).float() / 255
                windows = len(video) - frames * stride + 1
                starts = torch.linspace(0, windows - 1, clips).floor().long().tolist()
                top, left = (video.shape[1] - crop + 1) // 2, (video.shape[2] - crop + 1) // 2
                clip_batch = torch.stack([video[s:s + frames * stride:stride, top:top + crop, left:left + crop]
                                          for s in starts]).permute(0, 4, 1, 2, 3)   # n C T H W
            logits = backbone.eval()(normalize_clips(clip_batch)) @ w.T + b          # n C
            scores = torch.log_softmax(logits, dim=1) if protocol == "fame" else logits
            target = fame_index[item.label]
            video_hits += int(scores.mean(0).argmax()) == target
            clip_hits += int((scores.argmax(1) == target).sum())
    return {"video_top1": 100.0 * video_hits / len(items), "clip_top1": 100.0 * clip_hits / (len(items) * clips)}


@pytest.mark.parametrize("protocol", ["toolkit", "fame"])
def test_fame_finetuned_file_matches_a_hand_computed_test(synth, tmp_path, protocol):
    path = tmp_path / "fame_ft.pth.tar"
    torch.save(_fame_finetuned(classes=3), path)
    assert checkpoint_settings(read_weights(path)) == FAME_EVAL_SETTINGS   # 16 frames, 224 px, 10 clips
    # make the file's classifier informative (nearest class mean of the test videos' features, rows in
    # FAME's sorted-name order), so that a wrong class order would show in the accuracy
    items, classes = load_items("ucf101", synth, synth / "splits", 1, "test")
    backbone, _ = load_backbone(path)
    with torch.no_grad():
        feats = torch.stack([backbone.eval()(normalize_clips(clips)).mean(0)
                             for clips, _ in MultiClipVideos(items, 4, 2, 24, clips_per_video=3)])
    labels = torch.tensor([item.label for item in items])
    means = torch.stack([feats[labels == classes.index(name)].mean(0) for name in sorted(classes)])
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["module.fc.weight"] = means
    ckpt["state_dict"]["module.fc.bias"] = -0.5 * (means ** 2).sum(1)
    torch.save(ckpt, path)
    rc = main(["test", "--checkpoint", str(path), *_data(synth), "--frames", "4", "--frame-stride", "2",
               "--crop", "24", "--clips-per-video", "3", "--workers", "0", "--protocol", protocol,
               "--json", str(tmp_path / "t.json")])
    assert rc == 0
    tested = json.loads((tmp_path / "t.json").read_text())
    want = _reference_results(path, synth, protocol)
    assert list(tested) == ["video_top1", "video_top5", "clip_top1"]
    assert tested["video_top1"] == pytest.approx(want["video_top1"])
    assert tested["clip_top1"] == pytest.approx(want["clip_top1"])
    assert tested["video_top5"] == 100.0   # 3 classes
    assert tested["video_top1"] > 50.0      # above the 33.3 that one class, or a wrong class order, would give


def test_fame_protocol_leaves_out_videos_shorter_than_a_window(synth, tmp_path, capsys):
    path = tmp_path / "fame_ft.pth.tar"
    torch.save(_fame_finetuned(classes=3), path)
    rc = main(["test", "--checkpoint", str(path), *_data(synth), "--frames", "7", "--frame-stride", "2",
               "--crop", "24", "--workers", "0", "--protocol", "fame"])
    assert rc == 2
    assert "no test video has the 14 frames of one clip" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fame_clip_starts_equal_torchvisions_uniform_clip_sampler():
    """FAME's eval.py: VideoClips of frames*stride consecutive frames at every start (step 1), then
    UniformClipSampler(10); built from frame timestamps only, so nothing is decoded."""
    from torchvision.datasets.samplers import UniformClipSampler
    from torchvision.datasets.video_utils import VideoClips

    lengths = [20, 31, 32, 33, 40, 41, 100, 164, 301]
    paths = [f"v{i}.avi" for i in range(len(lengths))]
    meta = {"video_paths": paths, "video_pts": [torch.arange(n) for n in lengths], "video_fps": [25.0] * len(lengths)}
    clips = VideoClips(paths, 32, 1, _precomputed_metadata=meta)
    want = []
    for i in UniformClipSampler(clips, 10):
        video, clip = clips.get_clip_location(i)
        want.append(int(clips.clips[video][clip][0]))
    got = torch.cat([fame_clip_starts(n, 32, 10) for n in lengths]).tolist()
    assert got == want
    assert fame_clip_starts(31, 32, 10).numel() == 0   # too short: no clip, as VideoClips
