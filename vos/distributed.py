"""Former import path of :mod:`vos.infra.distributed`, kept so that existing scripts keep working.

``vos.distributed`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.distributed

warnings.warn("vos.distributed is deprecated; import from vos.infra.distributed", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.distributed
