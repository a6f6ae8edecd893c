"""Former import path of :mod:`vos.infra.distributed` (version 0.1). It *is* that module, so that a name
a script patches through the former path takes effect."""

import vos.infra.distributed
from vos._former_paths import alias_module

alias_module(__name__, vos.infra.distributed)
