"""End to end through the command line: synth -> pretrain (FAME + CO2) -> linear probe / fine-tune
-> retrieve, results as JSON; user errors as one line with exit status 2."""

import json

import pytest
import torch

from ssl_video.cli import main
from tests.helpers.paths import REPO_ROOT

CLIP = ["--frames", "4", "--frame-stride", "1", "--crop", "32", "--workers", "0"]


@pytest.fixture(scope="module")
def synth(ssl_synth_data):
    return ssl_synth_data(classes=2, videos_per_class=6, frames=8, seed=1)


def _data(root):
    return ["--data-root", str(root), "--split-dir", str(root / "splits")] + CLIP


@pytest.fixture(scope="module")
def pretrained(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    rc = main(["pretrain", *_data(synth), "--arch", "r3d_tiny", "--epochs", "1", "--batch-size", "2",
               "--moco-k", "16", "--moco-dim", "8", "--fame", "--beta", "0.3", "--co2", "0.5",
               "--out", str(out / "run"), "--json", str(out / "pre.json")])
    assert rc == 0
    return out


def test_pretrain_writes_checkpoint_logs_and_summary(pretrained):
    summary = json.loads((pretrained / "pre.json").read_text())
    assert summary["epochs"] == 1 and summary["steps"] == 4  # 8 training videos / batch 2
    ckpt = torch.load(pretrained / "run" / "last.pt", weights_only=False)
    assert ckpt["kind"] == "moco_pretrain" and ckpt["epoch"] == 1 and ckpt["step"] == 4
    assert ckpt["config"]["fame"] is True and ckpt["config"]["co2"] == 0.5
    assert ckpt["model"]["queue"].shape == (8, 16)
    rows = (pretrained / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and "loss_co2" in rows[0] and len(rows) == 5
    assert any(p.name.startswith("events.") for p in (pretrained / "run" / "tensorboard").iterdir())


def test_the_report_of_a_pretrain_run_has_its_logged_curves(pretrained, tmp_path, capsys):
    import csv

    assert main(["report", str(pretrained / "run"), "--out", str(tmp_path / "report")]) == 0
    assert "ssl-video pretrain report" in capsys.readouterr().out
    page = (tmp_path / "report" / "index.html").read_text()
    data = json.loads(page[page.index('id="report-data">') + len('id="report-data">'):page.rindex("</script>")])
    with (pretrained / "run" / "log.csv").open(newline="") as f:
        logged = list(csv.DictReader(f))
    assert data["kind"] == "ssl-video pretrain"
    assert data["log"]["loss_co2"] == [float(row["loss_co2"]) for row in logged] and len(logged) == 4
    assert "Accuracy per epoch" in page and "Learning rate" in page  # acc_pos per epoch; lr over steps


def test_pretrain_color_flags_reach_the_dataset(synth, tmp_path, monkeypatch):
    import yaml

    import ssl_video.pretrain as pretrain_mod

    built = []
    real_build = pretrain_mod.build_dataset
    monkeypatch.setattr(pretrain_mod, "build_dataset", lambda cfg: built.append(real_build(cfg)) or built[-1])
    rc = main(["pretrain", *_data(synth), "--arch", "r3d_tiny", "--epochs", "1", "--batch-size", "2",
               "--moco-k", "16", "--moco-dim", "8", "--color-jitter", "0.5", "--grayscale", "0",
               "--out", str(tmp_path / "run")])
    assert rc == 0
    assert (built[0].color_jitter, built[0].grayscale) == (0.5, 0.0)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["color_jitter"], saved["grayscale"]) == (0.5, 0.0)


def test_linear_probe_keeps_backbone_frozen(synth, pretrained, tmp_path):
    rc = main(["finetune", *_data(synth), "--pretrained", str(pretrained / "run" / "last.pt"), "--linear",
               "--epochs", "1", "--batch-size", "4", "--lr", "0.1", "--clips-per-video", "3",
               "--out", str(tmp_path / "lin"), "--json", str(tmp_path / "lin.json")])
    assert rc == 0
    res = json.loads((tmp_path / "lin.json").read_text())
    assert set(res) == {"video_top1", "video_top5", "clip_top1"}
    n_test = 4  # 2 classes x round(6 / 3) test groups
    assert res["video_top1"] in {100.0 * k / n_test for k in range(n_test + 1)}
    assert res["clip_top1"] in {100.0 * k / (3 * n_test) for k in range(3 * n_test + 1)}
    assert res["video_top5"] == 100.0  # 2 classes
    pre = torch.load(pretrained / "run" / "last.pt", weights_only=False)["model"]
    lin = torch.load(tmp_path / "lin" / "last.pt", weights_only=False)
    assert lin["kind"] == "finetune" and lin["config"]["arch"] == "r3d_tiny"
    backbone = {k[len("encoder_q.backbone."):]: v for k, v in pre.items() if k.startswith("encoder_q.backbone.")}
    for key, value in backbone.items():  # weights and BatchNorm running statistics untouched
        torch.testing.assert_close(lin["model"]["backbone." + key], value, rtol=0, atol=0)


def test_finetune_trains_backbone_and_retrieve_reports_recalls(synth, pretrained, tmp_path, capsys):
    ckpt = str(pretrained / "run" / "last.pt")
    rc = main(["finetune", *_data(synth), "--pretrained", ckpt, "--epochs", "1", "--batch-size", "4",
               "--lr", "0.01", "--clips-per-video", "2", "--out", str(tmp_path / "ft")])
    assert rc == 0
    pre = torch.load(ckpt, weights_only=False)["model"]
    ft = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]
    assert not torch.equal(ft["backbone.stem.0.weight"], pre["encoder_q.backbone.stem.0.weight"])
    results = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert results.keys() == {"video_top1", "video_top5", "clip_top1"}
    rows = (tmp_path / "ft" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "video,label,predicted" and len(rows) == 1 + 4  # the 4 test videos
    correct = sum(label == predicted for _, label, predicted in (r.split(",") for r in rows[1:]))
    assert 100.0 * correct / 4 == pytest.approx(results["video_top1"])
    assert main(["report", str(tmp_path / "ft"), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'id="loss-0"' in page and 'id="confusion-matrix"' in page

    rc = main(["retrieve", *_data(synth), "--pretrained", ckpt, "--clips-per-video", "2",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert list(res) == ["R@1", "R@5", "R@10", "R@20", "R@50"]
    assert res["R@1"] <= res["R@5"] <= res["R@10"] == res["R@50"] == 100.0  # 8 gallery videos, 2 classes
    assert "R@1" in capsys.readouterr().out


def test_retrieve_takes_batch_size_and_a_finetune_config(synth, pretrained, tmp_path, capsys):
    ckpt = str(pretrained / "run" / "last.pt")
    base = ["retrieve", *_data(synth), "--pretrained", ckpt, "--clips-per-video", "2"]
    assert main([*base, "--json", str(tmp_path / "one.json")]) == 0
    # the repository's fine-tuning config: batch_size is read (4 clips = 2 videos per pass), the
    # training-only keys are ignored with one warning naming them
    with pytest.warns(UserWarning, match=r"ignoring dropout, epochs, linear, lr, lr_decay, lr_steps, "
                                         r"momentum, weight_decay \(settings of another command"):
        assert main([*base, "--config", str(REPO_ROOT / "configs/ssl_video/finetune_ucf101_r2plus1d.yaml"), "--batch-size", "4",
                     "--json", str(tmp_path / "two.json")]) == 0
    assert json.loads((tmp_path / "two.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
    # a key no ssl-video command knows is still an error
    (tmp_path / "typo.yaml").write_text("batch_sise: 4\n")
    assert main([*base, "--config", str(tmp_path / "typo.yaml")]) == 2
    assert "unknown key(s) batch_sise" in capsys.readouterr().err


def test_retrieve_features_do_not_depend_on_videos_per_batch(synth):
    from ssl_video.data.clips import MultiClipVideos
    from ssl_video.data.splits import load_items
    from ssl_video.models import build_backbone
    from ssl_video.retrieval import video_features

    torch.manual_seed(0)
    backbone = build_backbone("r3d_tiny")
    items, _ = load_items("ucf101", synth, synth / "splits", 1, "test")
    dataset = MultiClipVideos(items, frames=4, frame_stride=1, crop=32, clips_per_video=2)
    one, labels_one = video_features(backbone, dataset, videos_per_batch=1)
    three, labels_three = video_features(backbone, dataset, videos_per_batch=3)
    assert one.shape == (len(items), backbone.feature_dim) and torch.equal(labels_one, labels_three)
    torch.testing.assert_close(three, one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("argv,message", [
    (["finetune", "--pretrained", "nowhere.pt", "--out", "{tmp}/x"], "--pretrained nowhere.pt: file not found"),
    (["finetune", "--arch", "r3d_18", "--pretrained", "{ckpt}", "--out", "{tmp}/x"],
     "--arch r3d_18 does not match the r3d_tiny backbone"),
    (["retrieve", "--pretrained", "{tmp}/garbage.pt"], "is a text file, not a checkpoint of `ssl-video pretrain`"),
    (["pretrain", "--arch", "r3d_tiny", "--out", "{pre}/run"], "last.pt already exists; pass --resume"),
    (["pretrain", "--arch", "resnet50", "--out", "{tmp}/p", "--moco-k", "64"], "unknown --arch 'resnet50'"),
    (["pretrain", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/p"], "config file not found"),
    (["pretrain", "--arch", "r3d_tiny", "--moco-k", "64", "--color-jitter", "-1", "--out", "{tmp}/p"],
     "--color-jitter is a strength"),
    (["pretrain", "--arch", "r3d_tiny", "--moco-k", "64", "--grayscale", "2", "--out", "{tmp}/p"],
     "--grayscale is a probability in [0, 1]; got 2.0"),
])
def test_user_errors_are_one_line(synth, pretrained, tmp_path, capsys, argv, message):
    (tmp_path / "garbage.pt").write_text("not a checkpoint")
    subst = {"tmp": tmp_path, "ckpt": pretrained / "run" / "last.pt", "pre": pretrained}
    argv = [a.format(**subst) for a in argv]
    rc = main([argv[0], *_data(synth), *argv[1:]])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith(f"ssl-video {argv[0]}: error: ")


def test_finetune_resume_matches_uninterrupted(synth, pretrained, tmp_path, monkeypatch):
    import ssl_video.finetune as finetune_mod

    argv = ["finetune", *_data(synth), "--pretrained", str(pretrained / "run" / "last.pt"), "--epochs", "2",
            "--batch-size", "4", "--lr", "0.05", "--clips-per-video", "2"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0

    real_save, calls = finetune_mod.atomic_torch_save, {"n": 0}

    def save_then_die(obj, path):  # the process dies before writing the epoch-2 checkpoint
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(finetune_mod, "atomic_torch_save", save_then_die)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 1
    assert main([*argv, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert (tmp_path / "cut" / "log.csv").read_text() == (tmp_path / "full" / "log.csv").read_text()
    assert (tmp_path / "cut" / "results.json").read_text() == (tmp_path / "full" / "results.json").read_text()


def test_pretrain_checks_every_video_before_the_first_step(tmp_path, monkeypatch, capsys, ssl_synth_copy):
    import ssl_video.pretrain as pretrain_mod
    from tests.helpers.video_files import cut_video, decodable_frames

    root = ssl_synth_copy(classes=2, videos_per_class=6, frames=8, seed=1)  # its videos get damaged below
    steps = []
    real_step = pretrain_mod.train_step
    monkeypatch.setattr(pretrain_mod, "train_step", lambda *a, **k: steps.append(1) or real_step(*a, **k))
    argv = ["pretrain", *_data(root), "--arch", "r3d_tiny", "--epochs", "1", "--batch-size", "2", "--moco-k", "16",
            "--moco-dim", "8"]

    # two unreadable videos: one line naming the first and the count, before any step or file
    from ssl_video.data.splits import load_items

    items, _ = load_items("ucf101", root, root / "splits", 1, "train")
    broken = [items[3].path, items[5].path]
    originals = {path: path.read_bytes() for path in broken}
    for path in broken:
        path.write_bytes(b"not a video" * 50)
    assert main([*argv, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ssl-video pretrain: error: 2 of 8 videos cannot be read")
    assert f"{broken[0]}: cannot decode this file as a video" in err and f"(also: {broken[1]})" in err
    assert steps == [] and not (tmp_path / "bad").exists()

    # a video cut short: a warning with both counts, then training on the frames that decode
    for path, data in originals.items():
        path.write_bytes(data)
    cut_video(items[3].path, tmp_path / "cut.avi", 0.9)
    items[3].path.write_bytes((tmp_path / "cut.avi").read_bytes())
    expected = decodable_frames(items[3].path)
    assert 0 < expected < 8
    with pytest.warns(UserWarning, match=rf"{items[3].path.name}: only {expected} of the 8 frames"):
        assert main([*argv, "--out", str(tmp_path / "cut_run")]) == 0
    assert len(steps) == 4
