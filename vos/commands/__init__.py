"""One module per `vos` command: HELP, add_arguments(parser), run(args) -> int."""
