"""Former import path of :mod:`vos.infra.video_reader` (version 0.1). It *is* that module, so that a name
a script patches through the former path takes effect."""

import vos.infra.video_reader
from vos._former_paths import alias_module

alias_module(__name__, vos.infra.video_reader)
