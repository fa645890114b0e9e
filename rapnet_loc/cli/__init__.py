"""Command line of the suite (``rapnet-loc SUBCOMMAND``). Each subcommand is one module with
``add_parser(subparsers)`` and ``run(args) -> int``; ``main.py`` lists them."""
