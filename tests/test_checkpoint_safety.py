"""Loading files users pass in never runs code from them, and bad checkpoints give one-line errors."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_video.checkpoint import load_checkpoint, rng_state, set_rng_state
from ssl_video.cli import main as ssl_main
from ssl_video.models import build_backbone
from tests.helpers.vos_clips import TINY, moving_square_frames, write_mp4
from vos.cli import main as vos_main
from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file
from vos.infra.outputs import write_marker

CLIP = ["--frames", "4", "--frame-stride", "1", "--crop", "32", "--workers", "0"]


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    # the shape of a real checkpoint, with the payload where a config object could be
    backbone = build_backbone("r3d_tiny").state_dict()
    torch.save({"kind": "finetune", "config": {"arch": "r3d_tiny"}, "payload": Payload(marker),
                "model": {f"backbone.{k}": v for k, v in backbone.items()}}, path)
    return path


@pytest.fixture(scope="module")
def synth(ssl_synth_data):
    return ssl_synth_data(classes=2, videos_per_class=3, frames=8, seed=1)


def run(cli, capsys, argv):
    code = cli([str(a) for a in argv])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    lines = [line for line in output.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def entry_points(tmp_path: Path, synth: Path, ckpt: Path) -> list[tuple]:
    """Every command that loads a user's file, with ``ckpt`` as that file."""
    data = ["--data-root", synth, "--split-dir", synth / "splits", *CLIP]
    video = write_mp4(tmp_path / "clip.mp4", moving_square_frames(4, (48, 64)))
    runs = {}
    for name in ("pre", "ft", "train"):
        runs[name] = tmp_path / f"run_{name}"
        runs[name].mkdir()
        (runs[name] / "last.pt").write_bytes(ckpt.read_bytes())
    write_marker(runs["train"], "vos train")
    return [
        (ssl_main, ["finetune", *data, "--pretrained", ckpt, "--out", tmp_path / "ft_new", "--epochs", "1"]),
        (ssl_main, ["finetune", *data, "--linear", "--pretrained", ckpt, "--out", tmp_path / "lin", "--epochs", "1"]),
        (ssl_main, ["retrieve", *data, "--pretrained", ckpt]),
        (ssl_main, ["pretrain", *data, "--arch", "r3d_tiny", "--moco-k", "16", "--moco-dim", "8", "--batch-size", "2",
                    "--epochs", "1", "--out", runs["pre"], "--resume"]),
        (ssl_main, ["finetune", *data, "--arch", "r3d_tiny", "--epochs", "1", "--out", runs["ft"], "--resume"]),
        (vos_main, ["train", "--data", tmp_path, "--out", runs["train"], "--resume", "--backbone", "test_vit_tiny16",
                    "--weights", "random"]),
        (vos_main, ["segment", video, "--out", tmp_path / "seg", "--block", ckpt, *TINY]),
        (vos_main, ["segment", video, "--out", tmp_path / "seg", "--backbone", "test_vit_tiny16", "--weights", ckpt]),
    ]


def test_a_checkpoint_that_would_run_code_is_refused_everywhere(tmp_path, synth, capsys):
    marker = tmp_path / "pwned"
    ckpt = evil_checkpoint(tmp_path / "evil.pt", marker)
    for cli, argv in entry_points(tmp_path, synth, ckpt):
        line = run(cli, capsys, argv)
        assert "refused" in line and "posix.system" in line, (argv, line)
        assert "weights_only" not in line
        assert not marker.exists(), argv


@pytest.mark.parametrize("content,expected", [
    (b"epochs: 3\nlr: 0.1\n", "is a text file, not"),
    (bytes(range(256)) * 4, "is not a PyTorch file"),
    (b"", "is empty, not"),
    (b"\x80\x04\x95garbage", "a damaged or unsupported"),
])
def test_text_and_garbage_files_say_what_they_are_not(tmp_path, synth, capsys, content, expected):
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(content)
    for cli, argv in entry_points(tmp_path, synth, ckpt):
        line = run(cli, capsys, argv)
        assert expected in line and "weights_only" not in line and "will likely succeed" not in line, (argv, line)


def good_finetune_checkpoint() -> dict:
    backbone = build_backbone("r3d_tiny").state_dict()
    return {"kind": "finetune", "config": {"arch": "r3d_tiny"}, "model": {f"backbone.{k}": v for k, v in backbone.items()}}


def _missing_config(c):
    del c["config"]


def _config_without_arch(c):
    c["config"] = {"lr": 0.1}


def _missing_model(c):
    del c["model"]


def _no_backbone_weights(c):
    c["model"] = {k.replace("backbone.", "head."): v for k, v in c["model"].items()}


def _wrong_shapes(c):
    key = next(k for k, v in c["model"].items() if v.ndim == 5)
    c["model"][key] = torch.zeros(3, 3, 1, 1, 1)


def _missing_weight(c):
    c["model"].pop(next(iter(c["model"])))


@pytest.mark.parametrize("damage,expected", [
    (_missing_config, "['config'] is missing"),
    (_config_without_arch, "['config']['arch'] is missing"),
    (_missing_model, "['model'] is missing"),
    (_no_backbone_weights, "holds no backbone weights"),
    (_wrong_shapes, "of another shape"),
    (_missing_weight, "weight(s) missing"),
])
@pytest.mark.parametrize("command", ["finetune", "retrieve"])
def test_malformed_pretrained_checkpoints_give_one_line_errors(tmp_path, synth, capsys, damage, expected, command):
    ckpt = good_finetune_checkpoint()
    damage(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    argv = [command, "--data-root", synth, "--split-dir", synth / "splits", *CLIP, "--pretrained", tmp_path / "bad.pt"]
    if command == "finetune":
        argv += ["--out", tmp_path / "ft", "--epochs", "1"]
    line = run(ssl_main, capsys, argv)
    assert expected in line and str(tmp_path / "bad.pt") in line, line


def test_rng_state_is_plain_and_restores_exactly(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    np.random.standard_normal()  # leaves a cached gaussian in the numpy state
    state = rng_state()
    torch.save({"rng": [state]}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)  # no numpy objects inside
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(loaded["rng"][0])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == expected


def test_checkpoints_of_earlier_versions_still_load(tmp_path):
    """Earlier checkpoints kept the numpy state as a numpy array: numeric arrays are rebuilt without code."""
    np.random.seed(9)
    legacy = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    torch.save({"kind": "moco_pretrain", "rng": [legacy]}, tmp_path / "old.pt")
    expected = np.random.random(4).tolist()
    loaded = load_checkpoint(tmp_path / "old.pt")
    np.random.seed(0)
    set_rng_state(loaded["rng"][0])
    assert np.random.random(4).tolist() == expected
    with pytest.raises(UserError, match="refused"):  # but only for ssl-video checkpoints, not as a rule
        load_torch_file(tmp_path / "old.pt", "x")
