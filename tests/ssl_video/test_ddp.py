"""Pretraining under torchrun with 2 CPU processes (gloo): completes, ranks stay in sync."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_video.finetune import FinetuneConfig, VideoClassifier, _datasets, evaluate
from ssl_video.models import build_backbone
from tests.helpers.paths import REPO_ROOT



def run_torchrun(args: list[str], cwd: Path) -> str:
    """Run tests/helpers/ssl_pretrain.py ARGS under torchrun with 2 CPU processes; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO_ROOT / "tests" / "helpers" / "ssl_pretrain.py"), *args]
    # own process group, so that a hung run's workers can be stopped with torchrun itself
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


@pytest.mark.slow
def test_two_process_pretrain_keeps_ranks_identical(tmp_path):
    stdout = run_torchrun([str(tmp_path)], tmp_path)
    assert "pretrain: done, 1 epochs (2 steps" in stdout  # 16 videos / (2 processes x batch 4)
    init = torch.load(tmp_path / "init.pt")
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    weights = [k for k in r0 if k.startswith(("encoder_q.", "encoder_k.")) and "running_" not in k
               and "num_batches" not in k]
    assert len(weights) > 20
    for k in weights:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(r0[k], init[k]) for k in weights if k.startswith("encoder_q."))
    # both ranks enqueued all 2 x 4 x 2 = 16 keys of each of the 2 steps (all-gathered)
    assert int(r0["queue_ptr"]) == int(r1["queue_ptr"]) == 32 % 32
    torch.testing.assert_close(r0["queue"], r1["queue"], rtol=0, atol=0)
    assert not torch.equal(r0["queue"], init["queue"])
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert saved["epoch"] == 1 and len(saved["rng"]) == 2


@pytest.mark.slow
def test_two_process_finetune_trains_in_sync_and_tests_every_video(tmp_path, ssl_synth_data):
    data = ssl_synth_data(classes=2, videos_per_class=6, frames=8, seed=1)
    stdout = run_torchrun(["finetune", str(data), str(tmp_path)], tmp_path)
    assert stdout.count("finetune: done") == 1 and stdout.count("video_top1") == 1  # one process reports
    # 8 training videos / (2 processes x batch 2) = 2 steps per epoch
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert saved["epoch"] == 2 and saved["step"] == 4 and len(saved["rng"]) == 2
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0.keys() == r1.keys() == saved["model"].keys()
    for k in r0:  # the tested models: the same weights and (broadcast) BatchNorm statistics
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(r0[k], saved["model"][k], rtol=0, atol=0, msg=k)
    # the gathered test of both processes' halves equals one process testing every video
    cfg = FinetuneConfig(data_root=str(data), split_dir=str(data / "splits"), frames=4, frame_stride=1, crop=32,
                         arch="r3d_tiny", clips_per_video=2)
    _, test_set, _, classes = _datasets(cfg)
    model = VideoClassifier(build_backbone("r3d_tiny"), len(classes))
    model.load_state_dict(saved["model"])
    expected = evaluate(model, test_set)
    assert [int((tmp_path / f"tested{r}.txt").read_text()) for r in (0, 1)] == [2, 2]  # 4 test videos, shared
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == expected
    assert json.loads((tmp_path / "results.json").read_text()) == expected
