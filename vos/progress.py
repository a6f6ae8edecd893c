"""Former import path of :mod:`vos.infra.progress`, kept so that existing scripts keep working.

``vos.progress`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.progress

warnings.warn("vos.progress is deprecated; import from vos.infra.progress", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.progress
