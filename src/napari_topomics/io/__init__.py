"""Tissue in, results out: SpatialData stores and vendor folders, results, safe write-back.

Nothing here imports Qt or napari; ``spatialdata`` and ``spatialdata-io`` are imported when
a function needs them.
"""

from ._errors import TopomicsInputError
from ._inputs import TissueInput, check_count_modalities, load_tissue_input
from ._read import SOURCES, detect_source, read_tissue
from ._tables import (
    AnnotatedElement,
    TableInfo,
    annotated_element,
    cell_coordinates,
    list_tables,
    resolve_table,
)

__all__ = [
    "SOURCES",
    "AnnotatedElement",
    "TableInfo",
    "TissueInput",
    "TopomicsInputError",
    "annotated_element",
    "cell_coordinates",
    "check_count_modalities",
    "detect_source",
    "list_tables",
    "load_tissue_input",
    "read_tissue",
    "resolve_table",
]
