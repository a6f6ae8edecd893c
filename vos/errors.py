"""Former import path of :mod:`vos.infra.errors`, kept so that existing scripts keep working.

``VosError`` is :class:`vos.infra.errors.UserError` under its former name: ``except VosError``
catches every user error of both packages.
"""

import warnings

from vos.infra.errors import UserError as VosError  # noqa: F401

warnings.warn("vos.errors is deprecated; import UserError from vos.infra.errors", DeprecationWarning, stacklevel=2)
