"""The user-facing error type of both packages.

Library code raises :class:`UserError` for bad input (missing files, wrong formats, inconsistent
options). The command line (:func:`vos.infra.cli.run_cli`) turns it into one line on stderr and
exit status 2; it never reaches the user as a traceback. Messages say what is wrong, where, and
what to do.
"""


class UserError(Exception):
    """Bad input or configuration that the user can fix."""
