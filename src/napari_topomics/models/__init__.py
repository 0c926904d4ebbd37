"""User-facing model classes and the topic sweep."""

from ._distributed import DistributedOptionError, DistributedTrainingError
from ._model import MultimodalAmortizedLDA
from ._sweep import TopicSweep, sweep_topics

__all__ = [
    "DistributedOptionError",
    "DistributedTrainingError",
    "MultimodalAmortizedLDA",
    "TopicSweep",
    "sweep_topics",
]
