"""The fitting job shared by the CLI, the napari plugin and scripts.

``fit_tissue`` reads a tissue, trains the topic model with progress reports and a
cooperative stop, and returns the run's results; ``resolve_device`` checks a device choice
against the hardware.
"""

from ._device import DEVICE_CHOICES, Device, available_devices, resolve_device
from ._fit import FitConfig, FitOutcome, fit_tissue, prepare_tissue

__all__ = [
    "DEVICE_CHOICES",
    "Device",
    "FitConfig",
    "FitOutcome",
    "available_devices",
    "fit_tissue",
    "prepare_tissue",
    "resolve_device",
]
