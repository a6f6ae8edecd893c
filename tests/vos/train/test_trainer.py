"""End-to-end `vos train` on tiny data: losses go down, exact resume, NaN stop, segment loads the result."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import vos.train.trainer as trainer
from tests.helpers.paths import REPO_ROOT
from tests.helpers.vos_train import SIZE, make_frame_folders, read_log, tiny_config
from vos.cli import main
from vos.infra.errors import UserError
from vos.models.block import load_block
from vos.palette import read_label_png

pytestmark = pytest.mark.filterwarnings("ignore:backbone test_vit_tiny16 uses random weights")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_frame_folders(tmp_path_factory.mktemp("train_data"), videos=3, frames=8)


def test_losses_decrease_on_a_tiny_setting(data, tmp_path):
    # 90 iterations: with DINO's position-embedding interpolation of the tiny backbone's features the
    # semantic loss falls to 0.81 of its start in 60 iterations and to 0.59 in 90
    cfg = tiny_config(data, tmp_path / "run", iterations=90, checkpoint_every=90, cache_features=str(tmp_path / "cache"),
                      **{"optim.lr": 3e-3, "optim.min_lr": 3e-4})
    result = trainer.train(cfg)
    rows = read_log(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, 91)) and result.iterations == 90
    for name in ("loss", "semantic", "motion"):
        first = np.mean([r[name] for r in rows[:15]])
        last = np.mean([r[name] for r in rows[-15:]])
        assert last < 0.8 * first, (name, first, last)
    for r in rows:
        assert r["loss"] == pytest.approx(r["semantic"] + r["motion"], rel=1e-5)
    # the cosine schedule goes from lr to min_lr
    assert rows[0]["lr"] == pytest.approx(3e-3) and rows[-1]["lr"] == pytest.approx(3e-4, rel=0.01)


def test_resume_gives_the_same_losses(data, tmp_path, monkeypatch):
    trainer.train(tiny_config(data, tmp_path / "full"))
    full = read_log(tmp_path / "full")

    calls = {"n": 0}
    real = trainer.training_losses

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # dies during iteration 5, after the checkpoint of iteration 3
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_losses", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(tiny_config(data, tmp_path / "part"))
    assert [r["step"] for r in read_log(tmp_path / "part")] == [1, 2, 3, 4]
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(trainer, "training_losses", real)
    trainer.train(tiny_config(data, tmp_path / "part"), resume=True)
    resumed = read_log(tmp_path / "part")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full, resumed):
        for k in ("loss", "semantic", "motion", "lr"):
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), (a["step"], k)
    sd_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    sd_res = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["state_dict"]
    for k in sd_full:
        torch.testing.assert_close(sd_res[k], sd_full[k])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    real = trainer.motion_consistency_loss
    calls = {"n": 0}

    def nan_at_5(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(trainer, "motion_consistency_loss", nan_at_5)
    with pytest.raises(UserError, match=r"non-finite at iteration 5 .*motion=nan.*last good checkpoint: .*last.pt "
                                       r"\(iteration 3\)"):
        trainer.train(tiny_config(data, tmp_path / "run"))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_cli_trains_and_vos_segment_loads_the_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--backbone", "test_vit_tiny16", "--weights", "random",
            "--resolution", *map(str, SIZE), "--gap", "2", "--iterations", "2", "--lr", "1e-3", "--min-lr", "1e-4",
            "--config", str(tmp_path / "tiny.yaml")]
    (tmp_path / "tiny.yaml").write_text("loss:\n  queries: 4\n  semantic: {positives: 3, negatives: 8}\n"
                                        "  motion: {positives: 2, negatives: 6}\n")
    assert main(argv) == 0
    assert "trained to iteration 2" in capsys.readouterr().out
    assert (out / "config.yaml").is_file() and list((out / "tensorboard").glob("events.out.tfevents.*"))
    block, meta = load_block(out / "last.pt", "test_vit_tiny16", 64)
    assert meta["iteration"] == 2 and block.num_heads == 8
    seg_out = tmp_path / "seg"
    assert main(["segment", str(data / "vid_0"), "--out", str(seg_out), "--block", str(out / "last.pt"),
                 "--backbone", "test_vit_tiny16", "--weights", "random", "--resolution", *map(str, SIZE)]) == 0
    pngs = sorted(seg_out.rglob("*.png"))
    assert len(pngs) == 8 and read_label_png(pngs[0]).shape == SIZE
    # the same out again without --resume is refused; --resume with a changed recipe too
    assert main(argv) == 2
    assert "last.pt already exists; pass --resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--frames", "4"]) == 2
    assert "cannot resume with different settings (frames: 3 -> 4)" in capsys.readouterr().err
    # --resume alone takes the saved config; extending the run is allowed
    assert main(["train", "--out", str(out), "--resume", "--iterations", "3"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize("argv,message", [
    (["train", "--out", "x"], "no training data given; pass --data"),
    (["train", "--data", "nowhere", "--out", "x", "--backbone", "test_vit_tiny16", "--weights", "random"],
     "nowhere: no such file or folder"),
    (["train", "--data", ".", "--out", "x", "--iterations", "0"], "iterations must be >= 1"),
])
def test_cli_bad_input_is_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vos train: error:") and message in err and "\n" not in err


def test_k_counts_larger_than_a_frame_are_refused(data, tmp_path):
    with pytest.raises(UserError, match="loss.semantic: 30 positives \\+ 200 negatives exceed the 20 patches"):
        trainer.train(tiny_config(data, tmp_path / "run", **{"loss.semantic.positives": 30,
                                                             "loss.semantic.negatives": 200}))


def _torchrun(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vos", "train", *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_ddp_run_and_resume(data, tmp_path):
    (tmp_path / "tiny.yaml").write_text(
        "backbone: test_vit_tiny16\nweights: random\nresolution: [64, 80]\ngap: 2\ndevice: cpu\n"
        "checkpoint_every: 2\nlog_every: 1\noptim: {lr: 1.0e-3, min_lr: 1.0e-3}\n"  # constant lr: extending is exact
        "loss:\n  queries: 4\n  semantic: {positives: 3, negatives: 8}\n  motion: {positives: 2, negatives: 6}\n")
    common = ["--config", str(tmp_path / "tiny.yaml"), "--data", str(data)]
    _torchrun([*common, "--out", "full", "--iterations", "4"], tmp_path)
    _torchrun([*common, "--out", "part", "--iterations", "2"], tmp_path)
    ckpt = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2  # one RNG state per process
    assert not torch.equal(ckpt["rng"][0]["data"], ckpt["rng"][1]["data"])  # processes draw different clips
    _torchrun(["--out", "part", "--resume", "--iterations", "4"], tmp_path)
    full, part = read_log(tmp_path / "full"), read_log(tmp_path / "part")
    assert [r["step"] for r in part] == [1, 2, 3, 4]
    for a, b in zip(full, part):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    shutil.rmtree(tmp_path / "full")
