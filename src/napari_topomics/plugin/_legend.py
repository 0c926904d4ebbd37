"""The "Topic colours" dock: pick what the cells are coloured by, and read its legend.

A categorical legend names each topic by its top features (dominant topic); a colorbar with
its range explains a topic proportion or a modality weight. napari draws no legend for
coloured labels, so this dock is the key to the map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import _keys as keys
from ._coherence import COHERENCE_TITLE, topic_coherence
from ._colouring import DOMINANT, Colouring, colouring_choices, colouring_label
from ._colouring import topic_titles as _topic_titles
from ._follow import ResultsFollower
from ._result_layers import color_by, layer_colouring

if TYPE_CHECKING:
    import napari

__all__ = ["TopicLegendWidget", "colorbar_pixmap", "swatch_icon"]

#: Runs of at least this many cells are recoloured in a thread worker.
BACKGROUND_CELLS = 50_000
_NO_RUN = "No topic model run in the viewer: fit one or open a store with a run."


def swatch_icon(rgba, size: int = 14) -> QIcon:
    """A square icon filled with one colour."""
    pixmap = QPixmap(size, size)
    r, g, b, a = (int(round(255 * float(v))) for v in rgba)
    pixmap.fill(QColor(r, g, b, a))
    return QIcon(pixmap)


def colorbar_pixmap(cmap: str, width: int = 220, height: int = 14) -> QPixmap:
    """A horizontal gradient of a matplotlib colormap."""
    from matplotlib import colormaps

    row = (np.asarray(colormaps[cmap](np.linspace(0, 1, width))) * 255).astype(np.uint8)
    rgba = np.ascontiguousarray(np.repeat(row[None, :, :], height, axis=0))
    image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888)
    return QPixmap.fromImage(image.copy())


class TopicLegendWidget(QWidget, ResultsFollower):
    """Legend or colorbar of the current result layer, and the choice of what to colour.

    Parameters
    ----------
    napari_viewer
        The viewer whose active result layer the dock follows.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        self._worker = None  # the thread worker of the last background recolouring
        self.title = QLabel(_NO_RUN)
        self.title.setWordWrap(True)
        self.colour_by = QComboBox()
        self.colour_by.setToolTip("What the cells are coloured by; changing it never refits.")
        self.name_by = QComboBox()
        self.name_by.setToolTip("Modality whose top features name the topics.")
        self.entries_list = QListWidget()
        self.entries_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.entries_list.setWordWrap(True)
        self.entries_list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.entries_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(320)
        self.colorbar = QLabel()
        self.vmin_label, self.vmax_label = QLabel(), QLabel()
        self.vmax_label.setAlignment(Qt.AlignmentFlag.AlignRight)

        form = QFormLayout()
        form.addRow("Colour by", self.colour_by)
        form.addRow("Name topics by", self.name_by)
        bar_range = QHBoxLayout()
        bar_range.addWidget(self.vmin_label)
        bar_range.addWidget(self.vmax_label)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(form)
        layout.addWidget(self.entries_list)
        layout.addWidget(self.colorbar)
        layout.addLayout(bar_range)
        layout.addStretch()

        self.colour_by.currentIndexChanged.connect(self._on_colour_by)
        self.name_by.currentIndexChanged.connect(lambda _=None: self.refresh())
        self._follow(napari_viewer)

    # ------------------------------------------------------------------ reading
    def entries(self) -> list[str]:
        """The legend's lines as shown (one per topic, or the colorbar's range)."""
        return [self.entries_list.item(i).text() for i in range(self.entries_list.count())]

    @property
    def colouring(self) -> Colouring | None:
        """The colouring of the shown layer, or None."""
        return layer_colouring(self.layer) if self.results is not None else None

    # ------------------------------------------------------------------ updating
    def _set_choices(self) -> None:
        results = self.results
        choices = colouring_choices(results) if results is not None else []
        current = self.layer.metadata.get(keys.COLOURING, DOMINANT) if results else None
        self._updating = True
        try:
            if [self.colour_by.itemData(i) for i in range(self.colour_by.count())] != choices:
                self.colour_by.clear()
                for what in choices:
                    self.colour_by.addItem(colouring_label(what), what)
            if current in choices:
                self.colour_by.setCurrentIndex(choices.index(current))
            mods = [m for m in (results.modality_names if results else [])
                    if m in results.top_features]
            if [self.name_by.itemText(i) for i in range(self.name_by.count())] != mods:
                self.name_by.clear()
                self.name_by.addItems(mods)
        finally:
            self._updating = False

    def _on_colour_by(self, index: int) -> None:
        if self._updating or self.layer is None or index < 0:
            return
        what = self.colour_by.itemData(index)
        if what and what != self.layer.metadata.get(keys.COLOURING):
            # large runs are coloured in a thread worker: the viewer never stalls
            big = len(self.results.proportions) >= BACKGROUND_CELLS
            self._worker = color_by(self.layer, what, background=big)

    def _fit_height(self) -> None:
        rows = self.entries_list.count()
        height = sum(self.entries_list.sizeHintForRow(i) for i in range(rows))
        self.entries_list.setMaximumHeight(max(height, 20) + 2 * self.entries_list.frameWidth() + 4)

    def refresh(self) -> None:
        """Redraw for the shown layer and its colouring."""
        self._refresh()
        self._fit_height()

    def _refresh(self) -> None:
        self._set_choices()
        self.entries_list.clear()
        colouring = self.colouring
        if colouring is None:
            self.title.setText(_NO_RUN)
            self.colorbar.clear()
            self.vmin_label.clear()
            self.vmax_label.clear()
            return
        results = self.results
        self.title.setText(f"<b>{self.layer.name}</b> — run {results.run_name}: "
                           f"{colouring.title}")
        categorical = colouring.kind == "categorical"
        self.name_by.setEnabled(categorical)
        self.colorbar.setVisible(not categorical)
        self.vmin_label.setVisible(not categorical)
        self.vmax_label.setVisible(not categorical)
        if categorical:
            modality = self.name_by.currentText() or None
            titles = _topic_titles(results, modality)
            coherence = topic_coherence(results)
            for topic, rgba in zip(colouring.categories, colouring.category_colors, strict=True):
                item = QListWidgetItem(swatch_icon(rgba), titles[topic])
                if coherence is not None and np.isfinite(coherence.get(topic, np.nan)):
                    item.setToolTip(f"{COHERENCE_TITLE}: {coherence[topic]:.3f}")
                self.entries_list.addItem(item)
            return
        self.colorbar.setPixmap(colorbar_pixmap(colouring.cmap))
        self.vmin_label.setText(f"{colouring.vmin:.3g}")
        self.vmax_label.setText(f"{colouring.vmax:.3g}")
        self.entries_list.addItem(
            f"{colouring.title}: {colouring.vmin:.3g} to {colouring.vmax:.3g} ({colouring.cmap})"
        )
