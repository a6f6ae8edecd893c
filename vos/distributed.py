"""Former import path of :mod:`vos.infra.distributed`, kept so that existing scripts keep working."""

import warnings

from vos.infra.distributed import (DistContext, all_gather_objects, all_reduce_sum, barrier,  # noqa: F401
                                   broadcast_buffers, cleanup, init_distributed, shard)

warnings.warn("vos.distributed is deprecated; import from vos.infra.distributed", DeprecationWarning, stacklevel=2)
