"""The fitting job shared by the CLI, the napari plugin and scripts.

``fit_tissue`` reads a tissue, trains the topic model with progress reports and a
cooperative stop, and returns the run's results; ``resolve_device`` checks a device choice
against the hardware. Every run measures its topics' spatial coherence over the cell graph
its options describe; spatial runs also fit on that graph. ``sweep_tissue`` fits a range of
topic numbers and recommends one; ``sweep_outcome`` makes any of its fits a run on every
cell without a refit.
"""

from ._device import DEVICE_CHOICES, Device, available_devices, resolve_device
from ._fit import FitConfig, FitOutcome, fit_tissue, prepare_tissue
from ._spatial import GRAPH_CHOICES, SPATIAL_MODE_CHOICES
from ._sweep import AUTO_TOPICS, parse_topic_range, sweep_outcome, sweep_tissue

__all__ = [
    "AUTO_TOPICS",
    "DEVICE_CHOICES",
    "Device",
    "FitConfig",
    "FitOutcome",
    "GRAPH_CHOICES",
    "SPATIAL_MODE_CHOICES",
    "available_devices",
    "fit_tissue",
    "prepare_tissue",
    "resolve_device",
    "parse_topic_range",
    "sweep_outcome",
    "sweep_tissue",
]
