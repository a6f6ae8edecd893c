"""Name -> constructor registry for video backbones (timm style)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from vos.infra.errors import UserError

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BACKBONES[name] = fn
        return fn

    return add


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def build_backbone(arch: str, **kwargs) -> nn.Module:
    """A freshly initialised backbone ``arch`` (no downloaded weights); it has ``.feature_dim``."""
    if arch not in _BACKBONES:
        raise UserError(f"unknown --arch {arch!r}; choose one of: {', '.join(list_backbones())}")
    model = _BACKBONES[arch](**kwargs)
    assert isinstance(getattr(model, "feature_dim", None), int), f"backbone {arch} lacks feature_dim"
    return model
