"""FAME's released checkpoints: the MoCo pretraining file of its train.py and the fine-tuned I3D of
its eval.py load through ``load_backbone`` / ``ssl-video finetune|retrieve|test``, and the project's
``i3d`` computes what FAME's own I3D module computes on them.

The checkpoints are rebuilt from seeded values (tests/helpers/fame_release.py); the reference outputs in
tests/data/fame_i3d_release.json were computed by FAME's I3D module on the same checkpoints and
inputs.
"""

import json

import pytest
import torch

from ssl_video.cli import main
from ssl_video.evaluation import classifier_from_weights
from ssl_video.models.i3d import I3D, fame_key, same_padding
from ssl_video.pretrained import load_backbone, read_weights
from tests.helpers.fame_release import (fame_i3d_finetuned_checkpoint, fame_i3d_moco_checkpoint, fixture,
                                        seeded_clips, summary)
from vos.infra.errors import UserError

REFERENCE = fixture()["reference"]


def assert_close_summary(got: dict, want: dict, rel: float = 1e-4) -> None:
    """Every recorded number within ``rel`` of the reference, relative to the output's scale."""
    scale = want["norm"]
    assert got["norm"] == pytest.approx(want["norm"], rel=rel)
    assert abs(got["sum"] - want["sum"]) <= rel * scale * 32   # a sum of 1024 terms: sqrt(1024) x the norm scale
    torch.testing.assert_close(torch.tensor(got["first8"]), torch.tensor(want["first8"]), rtol=rel, atol=rel * scale)
    torch.testing.assert_close(torch.tensor(got["projection"]), torch.tensor(want["projection"]), rtol=rel,
                               atol=rel * scale * 32)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("fame")
    torch.save(fame_i3d_moco_checkpoint(seed=0), root / "checkpoint_0199.pth.tar")
    torch.save(fame_i3d_finetuned_checkpoint(seed=0), root / "ucf101_finetuned.pth.tar")
    return root


def test_same_padding_is_k_minus_s_with_the_extra_zero_after():
    assert same_padding((7, 7, 7), (2, 2, 2)) == ((2, 3),) * 3
    assert same_padding((1, 3, 3), (1, 2, 2)) == ((0, 0), (0, 1), (0, 1))
    assert same_padding((3, 3, 3), (1, 1, 1)) == ((1, 1),) * 3
    assert same_padding((2, 2, 2), (2, 2, 2)) == ((0, 0),) * 3


def test_output_sizes_follow_tensorflow_same_for_sizes_divisible_by_the_stride():
    # TF "SAME": out = ceil(in / stride) at every strided layer; 16x112x112 -> Mixed_5c 2x4x4
    with torch.no_grad():
        out = I3D().eval().features(torch.zeros(1, 3, 16, 112, 112))
    assert out.shape == (1, 1024, 2, 4, 4)


def test_fame_names_map_onto_every_i3d_parameter():
    names = [fame_key(k) for k, _ in fixture()["i3d_keys"]]
    own = I3D().state_dict()
    assert sorted(names) == sorted(own)
    assert fame_key("mixed_3b.branch_3.1.conv3d.weight") == "features.5.b3.1.conv.weight"
    shapes = dict(fixture()["i3d_keys"])
    assert all(list(own[fame_key(k)].shape) == s for k, s in shapes.items())
    with pytest.raises(UserError, match="mixed_6a"):
        fame_key("mixed_6a.branch_0.conv3d.weight")


@pytest.mark.parametrize("ref", REFERENCE, ids=lambda r: "x".join(map(str, r["shape"])))
def test_moco_release_features_equal_fame_module(release, ref):
    backbone, arch = load_backbone(release / "checkpoint_0199.pth.tar", "i3d")
    assert arch == "i3d"
    with torch.no_grad():
        features = backbone.eval()(seeded_clips(ref["shape"], ref["seed"]))
    assert features.shape == (ref["shape"][0], 1024)
    assert_close_summary(summary(features), ref["moco_features"])


@pytest.mark.parametrize("ref", REFERENCE, ids=lambda r: "x".join(map(str, r["shape"])))
def test_finetuned_release_features_and_scores_equal_fame_module(release, ref):
    path = release / "ucf101_finetuned.pth.tar"
    backbone, _ = load_backbone(path)              # arch from the checkpoint ("I3D")
    x = seeded_clips(ref["shape"], ref["seed"])
    with torch.no_grad():
        assert_close_summary(summary(backbone.eval()(x)), ref["finetuned_features"])
    # the dataset lists the classes in another order than FAME's (sorted folder names)
    classes = [f"Class{i:03d}" for i in range(101)][::-1]
    model = classifier_from_weights(read_weights(path), classes, path).eval()
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=1)[:, list(range(101))[::-1]]   # back to FAME's order
    assert_close_summary(summary(log_p), ref["finetuned_log_softmax"])
    assert log_p.argmax(1).tolist() == ref["finetuned_argmax"]


def test_checkpoints_saved_without_ddp_load_the_same(release, tmp_path):
    ckpt = fame_i3d_moco_checkpoint(seed=0)
    ckpt["state_dict"] = {k[len("module."):]: v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "plain.pth.tar")
    a, _ = load_backbone(release / "checkpoint_0199.pth.tar")
    b, _ = load_backbone(tmp_path / "plain.pth.tar")
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def _broken(tmp_path, name, edit):
    ckpt = fame_i3d_moco_checkpoint(seed=0)
    edit(ckpt)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["state_dict"].update({"module.encoder_q.mixed_4b.branch_0.conv3d.weight": torch.zeros(192, 480, 3, 1, 1)}),
     r"do not fit the i3d backbone \(1 of another shape, e\.g\. features\.8\.b0\.conv\.weight \(192, 480, 3, 1, 1\) "
     r"where \(192, 480, 1, 1, 1\) is expected\)"),
    (lambda c: c["state_dict"].pop("module.encoder_q.mixed_5c.branch_2.1.batch3d.running_var"),
     r"1 weight\(s\) missing, e\.g\. features\.15\.b2\.1\.bn\.running_var"),
    (lambda c: c["state_dict"].update({"module.encoder_q.mixed_6a.conv3d.weight": torch.zeros(1)}),
     r"'mixed_6a\.conv3d\.weight' is not a parameter of FAME's I3D trunk"),
    (lambda c: c.update(arch="r2plus1d_18"), r"a FAME checkpoint of arch 'r2plus1d_18', which this toolkit cannot "
                                             r"load; it loads FAME's I3D checkpoints"),
])
def test_release_files_that_do_not_fit_are_one_line_errors(tmp_path, edit, message):
    path = _broken(tmp_path, "bad.pth.tar", edit)
    with pytest.raises(UserError, match=message) as err:
        load_backbone(path, "i3d")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("arch", ["i3d", "I3d"])
def test_fame_arch_names_are_read_in_any_case(release, tmp_path, arch):
    """FAME's scripts take --arch in any case and store it as given."""
    path = _broken(tmp_path, "lower.pth.tar", lambda c: c.update(arch=arch))
    a, name = load_backbone(path, "i3d")
    b, _ = load_backbone(release / "checkpoint_0199.pth.tar")
    assert name == "i3d" and all(torch.equal(b.state_dict()[k], v) for k, v in a.state_dict().items())


def test_project_checkpoint_with_wrong_shapes_is_a_one_line_error(tmp_path):
    model = {f"backbone.{k}": v for k, v in I3D().state_dict().items()}
    model["backbone.features.0.conv.weight"] = torch.zeros(64, 3, 3, 7, 7)
    torch.save({"kind": "finetune", "model": model, "config": {"arch": "i3d"}, "classes": ["a", "b"]}, tmp_path / "ft.pt")
    with pytest.raises(UserError, match=r"ft\.pt: the weights do not fit the i3d backbone .*features\.0\.conv\.weight"):
        load_backbone(tmp_path / "ft.pt")


@pytest.fixture(scope="module")
def synth(ssl_synth_data):
    return ssl_synth_data(classes=3, videos_per_class=4, frames=10, seed=3)


def _data(root, frames="8", crop="32"):
    return ["--data-root", str(root), "--split-dir", str(root / "splits"), "--frames", frames,
            "--frame-stride", "1", "--crop", crop, "--workers", "0"]


def test_cli_errors_for_files_of_neither_format_and_truncated_files(synth, release, tmp_path, capsys):
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "other.pt")  # no arch
    data = (release / "checkpoint_0199.pth.tar").read_bytes()
    (tmp_path / "truncated.pth.tar").write_bytes(data[: len(data) // 2])
    cases = [(["finetune", "--pretrained", str(tmp_path / "other.pt"), "--arch", "i3d", "--out", str(tmp_path / "o")],
              "other.pt: not a supported checkpoint; expected a checkpoint of `ssl-video pretrain`"),
             (["retrieve", "--pretrained", str(tmp_path / "truncated.pth.tar"), "--arch", "i3d"],
              "truncated.pth.tar: damaged: cut short"),
             (["finetune", "--pretrained", str(release / "checkpoint_0199.pth.tar"), "--arch", "r3d_18",
               "--out", str(tmp_path / "o")], "--arch r3d_18 does not match the i3d backbone"),
             (["test", "--checkpoint", str(release / "checkpoint_0199.pth.tar")],
              "is a pretraining checkpoint (FAME train.py) without a classifier"),
             (["test", "--checkpoint", str(release / "ucf101_finetuned.pth.tar")],
              "its classifier has 101 classes, the dataset 3; test on the dataset")]
    for argv, message in cases:
        rc = main([argv[0], *_data(synth), *argv[1:]])
        err = capsys.readouterr().err
        assert rc == 2, argv
        assert message in err and err.count("\n") == 1, err
    assert "(expected a checkpoint of `ssl-video pretrain` or `ssl-video finetune`, or FAME" in _last_error(main, ["retrieve", *_data(synth), "--pretrained",
                                                             str(tmp_path / "truncated.pth.tar")], capsys)


def _last_error(main, argv, capsys):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_finetune_linear_and_retrieve_from_the_moco_release(synth, release, tmp_path):
    """The linear probe keeps the backbone frozen: its checkpoint holds FAME's query encoder, renamed."""
    path = release / "checkpoint_0199.pth.tar"
    rc = main(["finetune", *_data(synth), "--pretrained", str(path), "--arch", "i3d", "--linear", "--epochs", "1",
               "--batch-size", "4", "--clips-per-video", "2", "--out", str(tmp_path / "lin")])
    assert rc == 0
    saved = torch.load(tmp_path / "lin" / "last.pt", weights_only=False)["model"]
    q = fame_i3d_moco_checkpoint(seed=0)["state_dict"]
    for name in ("conv3d_1a_7x7.conv3d.weight", "mixed_5c.branch_3.1.batch3d.running_mean"):
        assert torch.equal(saved[f"backbone.{fame_key(name)}"], q[f"module.encoder_q.{name}"])
        assert not torch.equal(saved[f"backbone.{fame_key(name)}"], q[f"module.encoder_k.{name}"])
    rc = main(["retrieve", *_data(synth), "--pretrained", str(path), "--arch", "i3d", "--clips-per-video", "2",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert list(json.loads((tmp_path / "r.json").read_text())) == ["R@1", "R@5", "R@10", "R@20", "R@50"]


def test_i3d_checkpoints_written_by_this_project_keep_loading(tmp_path):
    from ssl_video.moco import MoCo

    torch.manual_seed(0)
    moco = MoCo("i3d", dim=16, K=8)
    torch.save({"kind": "moco_pretrain", "model": moco.state_dict(), "config": {"arch": "i3d"}}, tmp_path / "last.pt")
    backbone, arch = load_backbone(tmp_path / "last.pt")
    assert arch == "i3d"
    want = moco.encoder_q.backbone.state_dict()
    assert backbone.state_dict().keys() == want.keys()
    assert all(torch.equal(v, want[k]) for k, v in backbone.state_dict().items())
