"""Former import path of :mod:`vos.infra.fileio`, kept so that existing scripts keep working."""

import warnings

from vos.infra.fileio import atomic_path, atomic_torch_save, atomic_write_text, load_torch_file  # noqa: F401

warnings.warn("vos.fileio is deprecated; import from vos.infra.fileio", DeprecationWarning, stacklevel=2)
