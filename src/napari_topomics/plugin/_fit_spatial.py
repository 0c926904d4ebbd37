"""The spatial options of the "Topic model" form: graph encoder and neighbour graph.

A "Spatial" check box enables (greys out otherwise) the choice of spatial mode (``gcn``: a
trainable graph-attention encoder; ``sgc``: features smoothed over the graph), of the
neighbour graph built from the cell centroids (``knn``, ``radius``, ``delaunay``) and of
its size: a neighbour count for ``knn`` or a radius for ``radius`` (Delaunay needs
neither). Like :class:`._fit_form.FitForm`, the widget only holds values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._spatial_values import GRAPHS, SPATIAL_DEFAULTS, SPATIAL_MODES, parse_radius

_TIPS = {
    "spatial": (
        "Fit the spatial model: each cell's topics are inferred from its own features and "
        "from those of its neighbours in a graph built from the cell centroids, so topics "
        "follow tissue domains rather than single noisy cells. Every run reports its "
        "topics' spatial coherence (Moran's I) over the graph; unticked, that graph is the "
        "default 6-nearest-neighbour one."
    ),
    "spatial_mode": (
        "Graph attention (GCN): a trainable graph encoder (GATv2) over each minibatch's "
        "sampled neighbourhood; most flexible, slower per epoch.\n"
        "Smoothed features (SGC): features averaged over the graph once before training, "
        "then a plain encoder; fast, a fixed amount of smoothing."
    ),
    "graph": (
        "Which cells count as neighbours, from the cell centroids: the k nearest cells "
        "(symmetrised), every cell within a radius, or the edges of a Delaunay "
        "triangulation (touching cells; nothing to choose)."
    ),
    "n_neighbors": "Neighbours per cell in the k-nearest-neighbour graph (6 suits most tissue).",
    "radius": (
        "Cells closer than this distance are neighbours; in the units of the cell "
        "coordinates (the coordinate system's, often µm). Required for the radius graph."
    ),
}


def _combo(items: tuple[tuple[str, str], ...], tip: str) -> QComboBox:
    box = QComboBox()
    for value, label in items:
        box.addItem(label, value)
    box.setToolTip(tip)
    return box


class SpatialOptions(QWidget):
    """The "Spatial" check box and the graph options it enables.

    Attributes
    ----------
    spatial
        The check box; the other controls are enabled only while it is checked.
    spatial_mode, graph, n_neighbors, radius
        Spatial mode and graph combos (item data: ``"gcn"``/``"sgc"``,
        ``"knn"``/``"radius"``/``"delaunay"``), the neighbour count and the radius text.
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spatial = QCheckBox("Spatial (graph encoders over neighbouring cells)")
        self.spatial.setToolTip(_TIPS["spatial"])
        self.spatial_mode = _combo(SPATIAL_MODES, _TIPS["spatial_mode"])
        self.graph = _combo(GRAPHS, _TIPS["graph"])
        self.n_neighbors = QSpinBox()
        self.n_neighbors.setRange(1, 100)
        self.n_neighbors.setToolTip(_TIPS["n_neighbors"])
        self.radius = QLineEdit()
        self.radius.setPlaceholderText("distance, e.g. 30")
        self.radius.setToolTip(_TIPS["radius"])

        self.options = QWidget()
        self.rows = QFormLayout(self.options)
        self.rows.setContentsMargins(20, 0, 0, 0)
        self.rows.addRow("Spatial mode", self.spatial_mode)
        self.rows.addRow("Neighbour graph", self.graph)
        self.rows.addRow("Neighbours", self.n_neighbors)
        self.rows.addRow("Radius", self.radius)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.spatial)
        layout.addWidget(self.options)

        self.spatial.toggled.connect(self._sync)
        self.graph.currentIndexChanged.connect(self._sync)
        self.spatial.toggled.connect(self.changed)
        for combo in (self.spatial_mode, self.graph):
            combo.currentIndexChanged.connect(self.changed)
        self.n_neighbors.valueChanged.connect(self.changed)
        self.radius.textChanged.connect(self.changed)
        self.set_values(SPATIAL_DEFAULTS)
        self._sync()

    def _sync(self, *_) -> None:
        """Grey out the options unless Spatial is checked; show the graph's size control."""
        self.options.setEnabled(self.spatial.isChecked())
        graph = self.graph.currentData()
        self.rows.setRowVisible(self.n_neighbors, graph == "knn")
        self.rows.setRowVisible(self.radius, graph == "radius")

    def values(self) -> dict[str, Any]:
        """``spatial, spatial_mode, graph, n_neighbors, radius`` (see :func:`parse_radius`)."""
        return {
            "spatial": self.spatial.isChecked(),
            "spatial_mode": self.spatial_mode.currentData(),
            "graph": self.graph.currentData(),
            "n_neighbors": self.n_neighbors.value(),
            "radius": parse_radius(self.radius.text()),
        }

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Apply the known entries of ``values`` (unknown or invalid ones are ignored)."""
        for key, combo in (("spatial_mode", self.spatial_mode), ("graph", self.graph)):
            index = combo.findData(values.get(key)) if key in values else -1
            if index >= 0:
                combo.setCurrentIndex(index)
        spatial = values.get("spatial")
        if isinstance(spatial, bool):
            self.spatial.setChecked(spatial)
        k = values.get("n_neighbors")
        if isinstance(k, int) and not isinstance(k, bool):
            self.n_neighbors.setValue(k)
        if "radius" in values:
            radius = values["radius"]
            if radius is None:
                self.radius.setText("")
            elif isinstance(radius, int | float | str) and not isinstance(radius, bool):
                self.radius.setText(f"{radius:g}" if isinstance(radius, float) else str(radius))
