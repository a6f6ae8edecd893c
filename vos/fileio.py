"""Former import path of :mod:`vos.infra.fileio`, kept so that existing scripts keep working.

``vos.fileio`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.fileio

warnings.warn("vos.fileio is deprecated; import from vos.infra.fileio", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.fileio
