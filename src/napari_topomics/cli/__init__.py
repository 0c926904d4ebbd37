"""Headless command-line interface: ``topomics <command>``."""

from ._main import main

__all__ = ["main"]
