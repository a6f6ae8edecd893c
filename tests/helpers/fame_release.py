"""Checkpoints in the FAME release formats, filled with seeded random values, for the loader tests.

The key names and shapes come from ``tests/data/fame_i3d_release.json`` (listed from FAME's own
I3D module); the values depend only on that list and a seed, so the same checkpoint is rebuilt here
without FAME's code. The reference outputs in that file were computed by FAME's I3D on the same
checkpoint and inputs (see ``reference`` there).
"""

from __future__ import annotations

import json
import math
import torch

from tests.helpers.paths import TEST_DATA

FIXTURE = TEST_DATA / "fame_i3d_release.json"


def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def seeded_tensors(keys_shapes: list, seed: int) -> dict[str, torch.Tensor]:
    """One tensor per (name, shape), drawn in the given order from one generator seeded ``seed``.

    Convolution/linear weights are He-scaled normals, BatchNorm scales and running variances
    uniform in [0.5, 1.5), biases and running means normal with std 0.1, so that activations stay
    of order one through the whole network.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in keys_shapes:
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(1000, dtype=torch.long)
        elif name.endswith("running_var") or (name.endswith(".weight") and len(shape) == 1):
            out[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith("running_mean") or name.endswith(".bias"):
            out[name] = 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            out[name] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
    return out


def fame_i3d_moco_checkpoint(seed: int = 0, queue: int = 64) -> dict:
    """FAME's train.py checkpoint of MoCo with the I3D under DDP: encoder_q (I3D + ``id_head``),
    encoder_k (different values: it must be ignored), queue, queue_ptr, epoch, arch, optimizer."""
    fx = fixture()
    encoder_keys = fx["i3d_keys"] + fx["moco_head_keys"]
    q = seeded_tensors(encoder_keys, seed)
    k = seeded_tensors(encoder_keys, seed + 1)
    state = {f"module.encoder_q.{name}": v for name, v in q.items()}
    state.update({f"module.encoder_k.{name}": v for name, v in k.items()})
    state["module.queue"] = torch.nn.functional.normalize(torch.randn(128, queue, generator=torch.Generator().manual_seed(seed)), dim=0)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return {"epoch": 200, "arch": "I3D", "state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "momentum": 0.9, "weight_decay": 1e-4, "params": [0]}]}}


def fame_i3d_finetuned_checkpoint(seed: int = 0) -> dict:
    """FAME's eval.py checkpoint of the fine-tuned I3D (101 classes) under DDP: ``module.<I3D key>``
    and ``module.fc.*``, with epoch, arch, best_acc1 and optimizer."""
    fx = fixture()
    state = seeded_tensors(fx["i3d_keys"] + fx["finetune_head_keys"], seed)
    return {"epoch": 150, "arch": "I3D", "state_dict": {f"module.{name}": v for name, v in state.items()},
            "best_acc1": 88.9,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "momentum": 0.9, "weight_decay": 1e-4, "params": [0]}]}}


def seeded_clips(shape: list[int], seed: int) -> torch.Tensor:
    """The normalised input clips the reference outputs were computed on."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def summary(x: torch.Tensor) -> dict:
    """A few numbers that pin down a (B, D) output: first 8 of each row, sum, norm, a random projection."""
    x = x.double()
    proj = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return {"first8": x[:, :8].tolist(), "sum": x.sum().item(), "norm": x.norm().item(),
            "projection": (x @ proj).tolist()}
