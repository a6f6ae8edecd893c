"""Pretraining under torchrun with 2 CPU processes (gloo): completes, ranks stay in sync."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_pretrain_keeps_ranks_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ssltrain_helpers.py"), str(tmp_path)]
    # own process group, so that a hung run's workers can be stopped with torchrun itself
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
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
