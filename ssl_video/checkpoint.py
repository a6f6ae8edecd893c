"""Run-directory checkpoints shared by pretraining and fine-tuning: ``DIR/last.pt``, RNG states.

Every process's RNG states (torch, numpy, python) are stored, one entry per rank, so that a resumed
multi-process run draws the same augmentations and permutations as an uninterrupted one. Checkpoints
hold only tensors and plain Python values (the numpy state as a tensor and numbers), so that they
load with ``torch.load(weights_only=True)``: loading a file never runs code from it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vos.infra.checkpoints import (check_resume_settings, check_state_dict, check_training_state,
                                   load_checkpoint_dict, torch_rng_state_spec)
from vos.infra.distributed import DistContext, all_gather_objects
from vos.infra.errors import UserError
from vos.infra.schema import Dict, Int, ListOf, MapOf, Number, OneOf, Plain, Satisfies, Str, Tensor, check

# Options that may change between an interrupted run and its resumption (they do not change results).
RESUME_MAY_DIFFER = {"workers", "data_root", "split_dir", "pretrained"}


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (python's is a tuple of ints)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {"bit_generator": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["bit_generator"], numpy_state["keys"].numpy().astype(np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)  # a tuple with a numpy array in checkpoints of earlier versions
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def gather_rng_states(ctx: DistContext) -> list[dict[str, Any]]:
    """RNG states of all processes in rank order (a one-element list in a single process)."""
    return all_gather_objects(rng_state(), ctx)


def restore_rng_states(states: list[dict[str, Any]], ctx: DistContext, path: Path) -> None:
    if len(states) != ctx.world_size:
        raise UserError(f"{path} was written by {len(states)} process(es); resume it with the same number "
                       f"of processes (now {ctx.world_size}) to continue exactly")
    set_rng_state(states[ctx.rank])


CHECKPOINT_KINDS = "a checkpoint of `ssl-video pretrain` or `ssl-video finetune`"


def load_checkpoint(path: Path, expected: str = CHECKPOINT_KINDS) -> dict:
    """The dict saved in ``path``, loaded without running code from the file (tensors and plain values
    only; numeric numpy arrays too, which checkpoints of earlier versions held in their RNG states).
    ``expected`` names the files accepted, in error messages."""
    return load_checkpoint_dict(path, expected, allow_numpy_arrays=True)


def _python_random_state(value) -> bool:
    try:
        random.Random().setstate(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _legacy_numpy_state(value) -> bool:
    """The numpy state as ``np.random.get_state()`` returns it (a tuple with an array; earlier versions)."""
    try:
        np.random.RandomState().set_state(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return False
    return True


# One process's RNG states (rng_state), and a run checkpoint of pretraining or fine-tuning; the
# model, optimiser and scheduler states are checked against the ones the run builds.
RNG_STATE = Dict({
    "torch": torch_rng_state_spec(),
    "numpy": OneOf(Dict({"bit_generator": Str(("MT19937",)), "keys": Tensor(shape=(624,), dtype=torch.int64),
                         "pos": Int(min=0, max=624), "has_gauss": Int(min=0, max=1), "cached_gaussian": Number()}),
                   Satisfies(_legacy_numpy_state, "a numpy RNG state")),
    "python": Satisfies(_python_random_state, "a Python RNG state (random.getstate())"),
})
TRAINING_STATE = Dict({"config": Plain(), "model": MapOf(Tensor()), "optimizer": Dict({}), "scheduler": Dict({}),
                       "rng": ListOf(RNG_STATE, min_len=1), "epoch": Int(min=0), "step": Int(min=0)})
DAMAGED = "the checkpoint is damaged; restore it from a copy, or start a new --out"


def restore_training_state(path: Path, config: dict, model: torch.nn.Module, optimizer, scheduler,
                           ctx: DistContext) -> tuple[int, int]:
    """Load ``path`` into the model, optimiser, scheduler and this process's RNGs, after checking
    that ``config`` is the one the run was started with; returns (epoch, step) to continue from."""
    ckpt = check(load_checkpoint(path), TRAINING_STATE, path, DAMAGED)
    check_resume_settings(ckpt["config"], config, path, RESUME_MAY_DIFFER)
    check_state_dict(model.state_dict(), ckpt["model"], "the model", path)
    check_training_state(ckpt, optimizer, scheduler, path, DAMAGED)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng_states(ckpt["rng"], ctx, path)
    return ckpt["epoch"], ckpt["step"]
