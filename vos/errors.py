"""Former import path of :mod:`vos.infra.errors` (version 0.1). ``VosError`` is
:class:`vos.infra.errors.UserError` under its former name: ``except VosError`` catches every user
error of both packages."""

from vos._former_paths import warn_moved
from vos.infra.errors import UserError as VosError  # noqa: F401

warn_moved(__name__, "import UserError from vos.infra.errors")
