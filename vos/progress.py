"""Former import path of :mod:`vos.infra.progress`, kept so that existing scripts keep working."""

import warnings

from vos.infra.progress import LOG_INTERVAL_S, progress_bar  # noqa: F401

warnings.warn("vos.progress is deprecated; import from vos.infra.progress", DeprecationWarning, stacklevel=2)
