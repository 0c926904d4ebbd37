"""Pyro generative model, guide and networks of MultimodalAmortizedLDA."""

from ._config import DataConstants, ModuleConfig
from ._graph_encoders import GraphInputs
from ._module import EncodedCells, MultimodalLDAModule, topic_entropy
from ._networks import masked_softmax, moment_match
from ._priors import logistic_normal_approximation, regularised_horseshoe_scale

__all__ = [
    "DataConstants",
    "EncodedCells",
    "GraphInputs",
    "ModuleConfig",
    "MultimodalLDAModule",
    "logistic_normal_approximation",
    "masked_softmax",
    "moment_match",
    "regularised_horseshoe_scale",
    "topic_entropy",
]
