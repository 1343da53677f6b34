"""The ``transtailor`` command-line interface."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
