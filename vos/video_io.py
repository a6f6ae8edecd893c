"""Former import path of :mod:`vos.infra.video_reader`, kept so that existing scripts keep working.

``vos.video_io`` *is* that module (not a copy of its names), so that a name a script patches through
the old path takes effect."""

import sys
import warnings

import vos.infra.video_reader

warnings.warn("vos.video_io is deprecated; import from vos.infra.video_reader", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = vos.infra.video_reader
