"""Import paths of version 0.1 that moved (docs/architecture.md, former import paths): the former
modules and names stay importable through these helpers and warn once where the code lives now."""

from __future__ import annotations

import sys
import warnings
from types import ModuleType
from typing import Any, Callable, Mapping


def warn_moved(old: str, advice: str) -> None:
    """The DeprecationWarning of a former path ``old``; ``advice`` says where to import from now."""
    warnings.warn(f"{old} is deprecated; {advice}", DeprecationWarning, stacklevel=3)


def alias_module(old: str, new: ModuleType) -> None:
    """Called by the former module ``old`` as it is imported: from now on ``old`` *is* ``new``, so a
    name a script patches through the former path reaches the code that runs."""
    warn_moved(old, f"import from {new.__name__}")
    sys.modules[old] = new


def moved_names(module: str, moved: Mapping[str, tuple[Any, str]]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module``: ``moved[name] = (value, where it lives now)``."""
    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value, new = moved[name]
        warnings.warn(f"{module}.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
