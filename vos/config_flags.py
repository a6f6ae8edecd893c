"""Former import path of :mod:`vos.infra.config_flags`, kept so that existing scripts keep working."""

import warnings

from vos.infra.config_flags import (SCALARS, add_config_arguments, config_field, config_overrides,  # noqa: F401
                                    flag_dest, flag_name)

warnings.warn("vos.config_flags is deprecated; import from vos.infra.config_flags", DeprecationWarning, stacklevel=2)
