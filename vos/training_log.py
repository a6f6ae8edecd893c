"""Former import path of :mod:`vos.infra.training_log`, kept so that existing scripts keep working.

``vos.training_log`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.training_log

warnings.warn("vos.training_log is deprecated; import from vos.infra.training_log", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.training_log
