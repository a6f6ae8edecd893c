"""Former import path of :mod:`vos.infra.config`, kept so that existing scripts keep working.

``vos.config`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.config

warnings.warn("vos.config is deprecated; import from vos.infra.config", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.config
