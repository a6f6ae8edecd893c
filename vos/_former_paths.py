"""Import paths that moved (docs/architecture.md, former import paths; CHANGELOG.md).

The modules of version 0.2 that moved into the :mod:`vos.segment` package in 0.3 stay importable
until 0.4: importing one warns (DeprecationWarning) where the code lives now. The paths of 0.1,
deprecated in 0.2, are removed in 0.3: importing one fails with the path to use instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec

# Modules of version 0.2 that moved in 0.3, to be removed in 0.4: former path -> module now.
MOVED_MODULES = {
    "vos.compat": "vos.segment.conventions",
    "vos.masks": "vos.segment.objects",
    "vos.overlay": "vos.segment.overlay",
    "vos.segment_config": "vos.segment.config",
    "vos.segment_outputs": "vos.segment.outputs",
}
# Modules of version 0.1, deprecated in 0.2 and removed in 0.3: former path -> what to import instead.
REMOVED_MODULES = {
    "vos.errors": "vos.infra.errors (VosError is UserError)",
    "vos.config": "vos.infra.config",
    "vos.config_flags": "vos.infra.config_flags",
    "vos.distributed": "vos.infra.distributed",
    "vos.fileio": "vos.infra.fileio",
    "vos.progress": "vos.infra.progress",
    "vos.training_log": "vos.infra.training_log",
    "vos.video_io": "vos.infra.video_reader",
    "vos.outputs": "vos.infra.outputs (vos segment's checks: vos.segment.outputs)",
}


class FormerPaths:
    """Finds the former module paths above. ``vos/__init__.py`` puts it last in ``sys.meta_path``,
    so it is asked only about names no other finder has found; it answers for these names only.

    A moved module is the new module under its former name too, so that a name a script patches
    through the former path reaches the code that runs."""

    def find_spec(self, name: str, path=None, target=None) -> ModuleSpec | None:
        if name in REMOVED_MODULES:
            raise ModuleNotFoundError(f"{name} was removed in version 0.3; import from {REMOVED_MODULES[name]} "
                                      "(CHANGELOG.md)", name=name)
        return importlib.util.spec_from_loader(name, self) if name in MOVED_MODULES else None

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module, replaced by the new one in exec_module

    def exec_module(self, module) -> None:
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} is deprecated and will be removed in version 0.4; import from {new}",
                      DeprecationWarning, stacklevel=2)  # the importing line (importlib's frames are skipped)
        sys.modules[module.__name__] = importlib.import_module(new)
