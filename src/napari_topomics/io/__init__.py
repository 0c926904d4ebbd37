"""Tissue in, results out: SpatialData stores and vendor folders, results, safe write-back.

Nothing here imports Qt or napari; ``spatialdata`` and ``spatialdata-io`` are imported when
a function needs them.
"""

from ._destination import check_run_destination
from ._errors import TopomicsInputError
from ._inputs import TissueInput, check_count_modalities, load_tissue_input
from ._lazy_open import open_lazy
from ._read import SOURCES, detect_source, read_tissue
from ._results import TopicResults, check_run_name
from ._store import (
    delete_run,
    list_runs,
    load_run_model,
    read_run,
    recover_store,
    run_table_name,
    write_run,
)
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
    "TopicResults",
    "TopomicsInputError",
    "annotated_element",
    "cell_coordinates",
    "check_count_modalities",
    "check_run_destination",
    "check_run_name",
    "delete_run",
    "detect_source",
    "list_runs",
    "list_tables",
    "open_lazy",
    "load_run_model",
    "load_tissue_input",
    "read_run",
    "read_tissue",
    "recover_store",
    "resolve_table",
    "run_table_name",
    "write_run",
]
