"""Reading the checkpoints of training runs and weight files, for both packages: the dict a file
holds, strict weight loading with a one-line error, and the settings check before a run resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Collection

import torch
from torch import nn

from vos.infra.errors import UserError
from vos.infra.fileio import load_torch_file
from vos.infra.schema import Dict, Satisfies, Spec, check, describe, like, with_article


def load_checkpoint_dict(path: Path, expected: str, allow_numpy_arrays: bool = False) -> dict:
    """The dict saved in ``path``, loaded without running code from the file
    (:func:`vos.infra.fileio.load_torch_file`); ``expected`` names the files accepted, in errors."""
    ckpt = load_torch_file(path, expected, allow_numpy_arrays=allow_numpy_arrays)
    if not isinstance(ckpt, dict):
        raise UserError(f"{path} holds a {type(ckpt).__name__}, not {expected}")
    return ckpt


def check_state_dict(expected: dict[str, torch.Tensor], state: dict, what: str, path: Path) -> None:
    """A one-line UserError naming ``path`` unless ``state`` has exactly the names of ``expected``
    (tensors, possibly on the meta device), each a tensor of its shape and kind (floating-point or
    not): the first four missing and unexpected names, the first value of another type or shape;
    ``what`` names the module in that message."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    present = [k for k in expected if k in state]
    not_tensor = [k for k in present if not isinstance(state[k], torch.Tensor)
                  or state[k].is_floating_point() != expected[k].is_floating_point() or state[k].is_complex()]
    wrong = [k for k in present if k not in not_tensor and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing, e.g. {', '.join(missing[:4])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected, e.g. {', '.join(map(str, unexpected[:4]))}")
    if not_tensor:
        k = not_tensor[0]
        kind = "floating-point" if expected[k].is_floating_point() else str(expected[k].dtype).replace("torch.", "")
        problems.append(f"{len(not_tensor)} of another type, e.g. {k} is {describe(state[k])} where "
                        f"{with_article(kind)} tensor is expected")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} of another shape, e.g. {k} {tuple(state[k].shape)} "
                        f"where {tuple(expected[k].shape)} is expected")
    if problems:
        raise UserError(f"{path}: the weights do not fit {what} ({'; '.join(problems)})")


def load_state_strict(module: nn.Module, state: dict, what: str, path: Path) -> None:
    """``module.load_state_dict(state)`` after :func:`check_state_dict`: a one-line UserError naming
    ``path`` when the names, types or shapes do not fit."""
    check_state_dict(module.state_dict(), state, what, path)
    module.load_state_dict(state)


class _OptimizerState(Spec):
    """An optimiser's per-parameter state (``state_dict()["state"]``): parameter index -> dict of
    numbers and tensors, each tensor a scalar or of its parameter's shape."""

    what = "a dict of parameter index -> state"

    def __init__(self, shapes: list[tuple[int, ...]]):
        self.shapes = shapes

    def problem(self, value, where):
        if not isinstance(value, dict):
            return f"{where} is {describe(value)}, expected {self.what}"
        for index, entry in value.items():
            if not isinstance(index, int) or not 0 <= index < len(self.shapes):
                return f"{where} has the key {index!r}, expected parameter indices 0..{len(self.shapes) - 1}"
            if not isinstance(entry, dict):
                return f"{where}[{index}] is {describe(entry)}, expected a dict"
            for name, item in entry.items():
                fits = (isinstance(item, torch.Tensor) and item.is_floating_point()
                        and (item.ndim == 0 or tuple(item.shape) == self.shapes[index])) or \
                    (isinstance(item, (int, float)) and not isinstance(item, bool))
                if not fits:
                    return (f"{where}[{index}][{name!r}] is {describe(item)}, expected a number or a floating-point "
                            f"tensor of shape {self.shapes[index]}")
        return None


def check_training_state(ckpt: dict, optimizer: torch.optim.Optimizer, scheduler, path: Path, advice: str) -> None:
    """The optimiser and scheduler states of a checkpoint (``ckpt["optimizer"]``, ``ckpt["scheduler"]``)
    fit ``optimizer`` and ``scheduler`` as built for this run: the same parameter groups and
    hyperparameter types, per-parameter state of the parameters' shapes; else a one-line UserError
    naming ``path`` with ``advice``."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    spec = Dict({
        "optimizer": Dict({"state": _OptimizerState([tuple(p.shape) for p in params]),
                           "param_groups": like(optimizer.state_dict()["param_groups"])}),
        "scheduler": like({k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}),
    })
    check(ckpt, spec, path, advice)


def torch_rng_state_spec() -> Spec:
    """A torch CPU generator's state (``torch.get_rng_state()``, ``Generator.get_state()``): a uint8
    tensor of its size that a generator accepts (torch checks the content too)."""
    shape = tuple(torch.get_rng_state().shape)

    def accepted(value) -> bool:
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and tuple(value.shape) == shape):
            return False
        try:
            torch.Generator().set_state(value)
        except RuntimeError:  # "Invalid mt19937 state"
            return False
        return True

    return Satisfies(accepted, f"a torch RNG state (a uint8 tensor of shape {shape} that torch accepts)")


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
