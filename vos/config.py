"""Former import path of :mod:`vos.infra.config`, kept so that existing scripts keep working."""

import warnings

from vos.infra.config import config_to_dict, load_config  # noqa: F401

warnings.warn("vos.config is deprecated; import from vos.infra.config", DeprecationWarning, stacklevel=2)
