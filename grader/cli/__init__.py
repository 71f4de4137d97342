"""The ``mpgrade`` command: a few lines per command over the library (host side)."""

from grader.cli.main import main

__all__ = ["main"]
