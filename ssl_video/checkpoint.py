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

from vos.infra.checkpoints import check_resume_settings, load_checkpoint_dict, load_state_strict
from vos.infra.distributed import DistContext, all_gather_objects
from vos.infra.errors import UserError

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


def checked_field(ckpt: dict, keys: tuple[str, ...], kind: type, path: Path):
    """``ckpt[keys[0]][keys[1]]...``, which must be a ``kind``; a one-line error names what is missing."""
    value = ckpt
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            where = "".join(f"[{k!r}]" for k in keys[:depth + 1])
            raise UserError(f"{path}: {where} is missing; the checkpoint is damaged or not {CHECKPOINT_KINDS}")
        value = value[key]
    if not isinstance(value, kind):
        where = "".join(f"[{k!r}]" for k in keys)
        raise UserError(f"{path}: {where} is a {type(value).__name__}, not a {kind.__name__}; the checkpoint is damaged")
    return value


def restore_training_state(path: Path, config: dict, model: torch.nn.Module, optimizer, scheduler,
                           ctx: DistContext) -> tuple[int, int]:
    """Load ``path`` into the model, optimiser, scheduler and this process's RNGs, after checking
    that ``config`` is the one the run was started with; returns (epoch, step) to continue from."""
    ckpt = load_checkpoint(path)
    check_resume_settings(checked_field(ckpt, ("config",), dict, path), config, path, RESUME_MAY_DIFFER)
    load_state_strict(model, checked_field(ckpt, ("model",), dict, path), "the model", path)
    try:
        optimizer.load_state_dict(checked_field(ckpt, ("optimizer",), dict, path))
        scheduler.load_state_dict(checked_field(ckpt, ("scheduler",), dict, path))
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: the optimiser or scheduler state does not fit this run ({exc}); "
                       "the checkpoint is damaged") from None
    restore_rng_states(checked_field(ckpt, ("rng",), list, path), ctx, path)
    return checked_field(ckpt, ("epoch",), int, path), checked_field(ckpt, ("step",), int, path)
