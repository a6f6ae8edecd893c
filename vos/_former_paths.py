"""Import paths that moved (docs/architecture.md, former import paths; CHANGELOG.md): the former
modules and names stay importable, for a release, and warn once where the code lives now."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
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


# Modules of version 0.2 that moved into the vos.segment package in 0.3, to be removed in 0.4.
MOVED_MODULES = {
    "vos.compat": "vos.segment.conventions",
    "vos.masks": "vos.segment.objects",
    "vos.overlay": "vos.segment.overlay",
    "vos.segment_config": "vos.segment.config",
    "vos.segment_outputs": "vos.segment.outputs",
}


class MovedModules:
    """Finds the modules of :data:`MOVED_MODULES` (installed last in ``sys.meta_path`` by
    ``vos/__init__.py``, so it is asked only for names that exist nowhere else): importing one warns
    and gives the module at its new path, under both names, so that a name a script patches through
    the former path reaches the code that runs."""

    def find_spec(self, name: str, path=None, target=None) -> ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in MOVED_MODULES else None

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module, replaced by the new one in exec_module

    def exec_module(self, module) -> None:
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} is deprecated and will be removed in version 0.4; import from {new}",
                      DeprecationWarning, stacklevel=2)  # the importing line (importlib's frames are skipped)
        sys.modules[module.__name__] = importlib.import_module(new)
