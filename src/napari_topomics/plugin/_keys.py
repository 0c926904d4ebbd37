"""Names of the ``layer.metadata`` entries the plugin's layers carry.

The reader, the sample, the result layers and the docks all use these keys, so the fit
widget can find the SpatialData object and table behind a labels layer.
"""

from __future__ import annotations

#: The SpatialData object the layer's element belongs to (napari-spatialdata convention).
SDATA = "sdata"
#: Path of the store or vendor folder the layer was read from (str), or None.
SOURCE = "topomics_source"
#: Name of the element in the SpatialData object.
ELEMENT = "topomics_element"
#: ``"images"``, ``"labels"``, ``"shapes"`` or ``"points"``.
ELEMENT_KIND = "topomics_element_kind"
#: Coordinate system the layer's affine maps into.
COORDINATE_SYSTEM = "topomics_coordinate_system"
#: Names of the tables annotating the element (input tables first, then runs).
TABLES = "topomics_tables"
#: The first input (non-run) table annotating the element (AnnData), or absent
#: (napari-spatialdata convention).
ADATA = "adata"
#: Region / instance obs columns of that table.
REGION_KEY = "region_key"
INSTANCE_KEY = "instance_key"

#: A :class:`~napari_topomics.io._results.TopicResults` painted on the layer.
RESULTS = "topomics_results"
#: What the layer is coloured by: ``"dominant_topic"``, a topic name or ``"weight:<modality>"``.
COLOURING = "topomics_colouring"
#: ``"labels"`` or ``"points"`` for layers made to show a run (absent on the user's own layers).
ROLE = "topomics_role"
#: Run name and region a result layer shows (with ROLE, the identity used to reuse it).
RUN = "topomics_run"
REGION = "topomics_region"
#: The :class:`~._colouring.Colouring` last painted on the layer (legend and readout read it).
COLOURING_DATA = "topomics_colouring_data"
#: The layer's colormap / face colours before a run coloured it in place.
ORIGINAL = "topomics_original"
#: Weak references to the other layers showing the same run (recoloured together).
LINKED = "topomics_linked"
