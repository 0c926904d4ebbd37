"""Tissue in, results out: SpatialData stores and vendor folders, results, safe write-back.

Nothing here imports Qt or napari; ``spatialdata`` and ``spatialdata-io`` are imported when
a function needs them.
"""

from ._errors import TopomicsInputError

__all__ = ["TopomicsInputError"]
