"""The `vla` command line: the one composition root, which may import every package. Heavy packages are
imported inside each subcommand."""

from vla.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
