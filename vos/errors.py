"""User-facing errors.

Library code raises :class:`VosError` for bad input (missing files, wrong formats, inconsistent
options). The CLI turns it into one line on stderr and a non-zero exit; it never reaches the user
as a traceback. Messages say what is wrong, where, and what to do.
"""


class VosError(Exception):
    """Bad input or configuration that the user can fix."""
