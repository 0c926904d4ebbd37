"""User-facing model classes."""

from ._model import MultimodalAmortizedLDA

__all__ = ["MultimodalAmortizedLDA"]
