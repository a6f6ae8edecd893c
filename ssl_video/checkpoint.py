"""Run-directory checkpoints shared by pretraining and fine-tuning: ``DIR/last.pt``, RNG states.

Every process's RNG states (torch, numpy, python) are stored, one entry per rank, so that a resumed
multi-process run draws the same augmentations and permutations as an uninterrupted one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vos.distributed import DistContext, all_gather_objects
from vos.errors import VosError
from vos.outputs import check_run_dir

# Options that may change between an interrupted run and its resumption (they do not change results).
RESUME_MAY_DIFFER = {"workers", "data_root", "split_dir", "pretrained"}


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
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
        raise VosError(f"{path} was written by {len(states)} process(es); resume it with the same number "
                       f"of processes (now {ctx.world_size}) to continue exactly")
    set_rng_state(states[ctx.rank])


def check_resume_config(saved: dict, current: dict, path: Path) -> None:
    """A resumed run must use the settings it was started with (except :data:`RESUME_MAY_DIFFER`)."""
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUME_MAY_DIFFER and saved.get(k) != current.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise VosError(f"{path}: cannot resume with different settings ({detail}); "
                       "use the original settings or a new --out")


def prepare_out_dir(out_dir: Path, resume: bool, command: str) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to overwrite a finished one,
    and a folder that is not empty and not a run of ``command`` (see :func:`vos.outputs.check_run_dir`)."""
    check_run_dir(out_dir, command, resume)
    last = out_dir / "last.pt"
    if last.exists() and not resume:
        raise VosError(f"{last} already exists; pass --resume to continue that run or choose another --out")
    return last if (resume and last.exists()) else None


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unreadable / truncated / not a torch file: a user error, not a bug
        raise VosError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc


def restore_training_state(path: Path, config: dict, model: torch.nn.Module, optimizer, scheduler,
                           ctx: DistContext) -> tuple[int, int]:
    """Load ``path`` into the model, optimiser, scheduler and this process's RNGs, after checking
    that ``config`` is the one the run was started with; returns (epoch, step) to continue from."""
    ckpt = load_checkpoint(path)
    check_resume_config(ckpt["config"], config, path)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng_states(ckpt["rng"], ctx, path)
    return ckpt["epoch"], ckpt["step"]
