"""User-facing model classes and the topic sweep."""

from ._model import MultimodalAmortizedLDA
from ._sweep import TopicSweep, sweep_topics

__all__ = ["MultimodalAmortizedLDA", "TopicSweep", "sweep_topics"]
