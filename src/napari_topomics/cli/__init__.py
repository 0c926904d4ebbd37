"""Headless command-line interface: ``napari-topomics fit|report|demo|info``."""

from ._main import main

__all__ = ["main"]
