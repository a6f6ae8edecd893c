"""One module per ``vos`` command: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""
