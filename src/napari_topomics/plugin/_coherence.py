"""Spatial coherence of a run's topics (Moran's I per topic) for the docks.

:func:`topic_coherence` reads ``TopicResults.spatial_coherence`` (None for runs that carry
none); :class:`CoherencePanel` lists each topic's Moran's I and their mean and hides itself
when the run has no values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from ..io._results import TopicResults

__all__ = ["COHERENCE_TITLE", "COHERENCE_TIP", "CoherencePanel", "graph_summary",
           "run_spatial_summary", "topic_coherence"]

COHERENCE_TITLE = "Spatial coherence (Moran's I)"
COHERENCE_TIP = (
    "Moran's I of each topic's proportion over the cell-neighbour graph (built from the "
    "cell centroids): near 1 the topic forms contiguous domains, near 0 it is scattered "
    "at random, below 0 it alternates between neighbouring cells."
)


def topic_coherence(results: TopicResults | None) -> pd.Series | None:
    """Moran's I per topic (float, indexed by the run's topic names), or None when absent."""
    values = results.spatial_coherence if results is not None else None
    if values is None:
        return None
    series = pd.Series(values, dtype=np.float64)
    series.index = series.index.map(str)
    return series.reindex(results.topic_names)


def graph_summary(provenance: dict) -> str:
    """The run's cell graph in words (``"6-nearest-neighbour graph"``), or ``""``."""
    graph = provenance.get("graph")
    if graph == "knn" and provenance.get("n_neighbors") is not None:
        return f"{provenance['n_neighbors']}-nearest-neighbour graph"
    if graph == "radius" and provenance.get("radius") is not None:
        return f"graph of cells within {provenance['radius']:g}"
    if graph == "delaunay":
        return "Delaunay graph"
    return f"{graph} graph" if graph else ""


def run_spatial_summary(results: TopicResults) -> str:
    """How the run was fitted and its graph, from the provenance, e.g.
    ``"spatial model (gcn) · 6-nearest-neighbour graph"``; ``""`` when it does not say."""
    prov = results.provenance or {}
    spatial = prov.get("spatial")
    if spatial is None:
        model = ""
    elif spatial:
        mode = prov.get("spatial_mode")
        model = "spatial model" + (f" ({mode})" if mode else "")
    else:
        model = "plain (non-spatial) model"
    return " · ".join(part for part in (model, graph_summary(prov)) if part)


class CoherencePanel(QGroupBox):
    """Table of each topic's Moran's I and their mean; clicking a row picks that topic.

    Attributes
    ----------
    table
        Two columns (topic, Moran's I), one row per topic.
    mean
        The mean over topics (and how the run was fitted).
    topic_clicked
        Emitted with the topic name of a clicked row.
    """

    topic_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(COHERENCE_TITLE, parent)
        self.setToolTip(COHERENCE_TIP)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Topic", "Moran's I"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setToolTip(COHERENCE_TIP)
        self.mean = QLabel()
        self.mean.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.mean)
        layout.addWidget(self.table)
        self.table.cellClicked.connect(self._on_click)
        self.values: pd.Series | None = None
        self.setVisible(False)

    def show_results(self, results: TopicResults | None, topic: str | None = None) -> None:
        """Show the run's values (hidden when it has none) with ``topic``'s row selected."""
        self.values = topic_coherence(results)
        if self.values is None:
            self.table.setRowCount(0)
            self.mean.clear()
            self.setVisible(False)
            return
        self.table.setRowCount(len(self.values))
        for row, (name, value) in enumerate(self.values.items()):
            cells = (name, "n/a" if not np.isfinite(value) else f"{value:.3f}")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        mean = float(np.nanmean(self.values)) if self.values.notna().any() else float("nan")
        how = run_spatial_summary(results)
        self.mean.setText(f"Mean over {len(self.values)} topics: {mean:.3f}"
                          + (f" · {how}" if how else ""))
        self.select(topic)
        self._fit_height()
        self.setVisible(True)

    def select(self, topic: str | None) -> None:
        """Highlight ``topic``'s row (clears the selection for an unknown topic)."""
        names = [] if self.values is None else list(self.values.index)
        self.table.blockSignals(True)
        self.table.clearSelection()
        if topic in names:
            self.table.selectRow(names.index(topic))
        self.table.blockSignals(False)

    def rows(self) -> list[tuple[str, str]]:
        """The table's rows as shown: ``(topic, Moran's I text)``."""
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text())
                for r in range(self.table.rowCount())]

    def _on_click(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.topic_clicked.emit(item.text())

    def _fit_height(self) -> None:
        """As tall as its rows (up to 10; more scroll), so no space is left empty."""
        self.table.resizeRowsToContents()
        rows = min(self.table.rowCount(), 10)
        height = self.table.horizontalHeader().sizeHint().height() + sum(
            self.table.rowHeight(r) for r in range(rows))
        self.table.setFixedHeight(height + 2 * self.table.frameWidth() + 2)
