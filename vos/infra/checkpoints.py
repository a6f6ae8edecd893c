"""Reading the checkpoints of training runs and weight files, for both packages: the dict a file
holds, strict weight loading with a one-line error, and the settings check before a run resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Collection

import torch
from torch import nn

from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file


def load_checkpoint_dict(path: Path, expected: str, allow_numpy_arrays: bool = False) -> dict:
    """The dict saved in ``path``, loaded without running code from the file
    (:func:`vos.infra.fileio.load_torch_file`); ``expected`` names the files accepted, in errors."""
    ckpt = load_torch_file(path, expected, allow_numpy_arrays=allow_numpy_arrays)
    if not isinstance(ckpt, dict):
        raise UserError(f"{path} holds a {type(ckpt).__name__}, not {expected}")
    return ckpt


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    """``module.load_state_dict(state)`` with a one-line UserError naming ``path`` when the names or
    shapes do not fit (the first four missing and unexpected names, the first wrong shape);
    ``what`` names the module in that message."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing, e.g. {', '.join(missing[:4])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected, e.g. {', '.join(unexpected[:4])}")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} of another shape, e.g. {k} {tuple(state[k].shape)} "
                        f"where {tuple(expected[k].shape)} is expected")
    if problems:
        raise UserError(f"{path}: the weights do not fit {what} ({'; '.join(problems)})")
    module.load_state_dict(state)


def flatten_settings(settings: dict, prefix: str = "") -> dict:
    """Nested settings as one level of dotted keys: ``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume_settings(saved: dict, current: dict, path: Path, may_differ: Collection[str] = ()) -> None:
    """A resumed run must use the settings it was started with: any difference outside the dotted
    keys ``may_differ`` would make it another run, and is refused with every change listed."""
    saved, current = flatten_settings(saved), flatten_settings(current)
    changed = sorted(k for k in set(saved) | set(current) if k not in may_differ and saved.get(k) != current.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise UserError(f"{path}: cannot resume with different settings ({detail}); "
                        "use the original settings or start a new --out")
