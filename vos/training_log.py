"""Former import path of :mod:`vos.infra.training_log`, kept so that existing scripts keep working."""

import warnings

from vos.infra.training_log import TrainingLog  # noqa: F401

warnings.warn("vos.training_log is deprecated; import from vos.infra.training_log", DeprecationWarning, stacklevel=2)
