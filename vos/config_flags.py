"""Former import path of :mod:`vos.infra.config_flags`, kept so that existing scripts keep working.

``vos.config_flags`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.config_flags

warnings.warn("vos.config_flags is deprecated; import from vos.infra.config_flags", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.config_flags
