"""Pretraining loop: checkpoints, exact resume, non-finite loss handling, config checks."""

import csv
import math

import pytest
import torch

import ssl_video.pretrain as pretrain_mod
from ssl_video.pretrain import pretrain
from tests.helpers.ssl_pretrain import RandomClipPairs, tiny_pretrain_config
from vos.infra.errors import UserError


def _losses(out_dir):
    with open(out_dir / "log.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)]


def _interrupt_at(monkeypatch, call_number):
    real_step = pretrain_mod.train_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call_number:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "train_step", step)


def test_resumed_run_matches_uninterrupted_run(tmp_path, monkeypatch):
    cfg = tiny_pretrain_config(fame=True, co2=0.5, moco_k=24)
    full = pretrain(cfg, tmp_path / "full", dataset=RandomClipPairs())
    assert full["steps"] == 4  # 8 videos / batch 4, two epochs

    _interrupt_at(monkeypatch, 4)  # the last step of epoch 2
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tmp_path / "cut", dataset=RandomClipPairs())
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 1
    monkeypatch.undo()
    with pytest.raises(UserError, match="already exists; pass --resume"):
        pretrain(cfg, tmp_path / "cut", dataset=RandomClipPairs())
    resumed = pretrain(cfg, tmp_path / "cut", resume=True, dataset=RandomClipPairs())

    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")
    assert len(_losses(tmp_path / "full")) == 4
    assert resumed["loss"] == full["loss"]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    assert int(a["model"]["queue_ptr"]) == 32 % 24  # 4 steps x 8 keys, queue of 24: wrapped once
    # cosine schedule: lr at the last step (index 3 of 4) is lr * (1 + cos(pi * 3/4)) / 2
    assert _losses(tmp_path / "full")[-1][2] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_pretrain_config()
    _interrupt_at(monkeypatch, 3)  # stop in epoch 2
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tmp_path, dataset=RandomClipPairs())
    monkeypatch.undo()
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(UserError, match=r"loss became nan at epoch 2, step 3; stopped, the last good checkpoint .*last.pt \(epoch 1\) is kept"):
        pretrain(cfg, tmp_path, resume=True, dataset=RandomClipPairs(poison=True))
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_refuses_changed_settings(tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_pretrain_config(), tmp_path, dataset=RandomClipPairs())
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"cannot resume with different settings \(lr: 0.05 -> 0.1\)"):
        pretrain(tiny_pretrain_config(lr=0.1), tmp_path, resume=True, dataset=RandomClipPairs())


@pytest.mark.parametrize("overrides,message", [
    (dict(moco_k=7), "--moco-k 7 is smaller than the 8 keys"),
    (dict(batch_size=1, fame=True), "--fame takes backgrounds"),
    (dict(batch_size=20, moco_k=64), "8 training videos are fewer than one batch"),
])
def test_bad_settings_are_user_errors(tmp_path, overrides, message):
    cfg = tiny_pretrain_config(**overrides)
    with pytest.raises(UserError, match=message):
        pretrain(cfg, tmp_path, dataset=RandomClipPairs())
    assert not (tmp_path / "last.pt").exists()
