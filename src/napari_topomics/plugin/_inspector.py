"""The "Topic inspector" dock: the top features of a topic in one modality, as bars.

It follows the shown result layer: colouring by a topic selects that topic, colouring by a
modality weight selects that modality. Runs that carry a spatial coherence also list each
topic's Moran's I and the mean (:class:`._coherence.CoherencePanel`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from . import _keys as keys
from ._coherence import CoherencePanel
from ._colouring import DOMINANT, WEIGHT_PREFIX, topic_palette
from ._follow import ResultsFollower
from ._mpl import figure_canvas, style_axes

if TYPE_CHECKING:
    import napari

__all__ = ["TopicInspectorWidget"]


class TopicInspectorWidget(QWidget, ResultsFollower):
    """Bar chart of a topic's top features (score = weight in the topic's profile).

    Parameters
    ----------
    napari_viewer
        The viewer whose result layer the dock follows.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        self.topic = QComboBox()
        self.modality = QComboBox()
        self.n_top = QSpinBox()
        self.n_top.setRange(1, 50)
        self.n_top.setValue(10)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.canvas, self.theme = figure_canvas(napari_viewer, 4.0, 3.2)
        self.coherence = CoherencePanel()

        form = QFormLayout()
        form.addRow("Topic", self.topic)
        form.addRow("Modality", self.modality)
        form.addRow("Features", self.n_top)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.canvas)
        layout.addWidget(self.coherence)

        for box in (self.topic, self.modality):
            box.currentIndexChanged.connect(self._on_pick)
        self.n_top.valueChanged.connect(self._on_pick)
        self.coherence.topic_clicked.connect(self.topic.setCurrentText)
        self._follow(napari_viewer)

    def shown_features(self) -> pd.DataFrame:
        """The rows drawn (``topic, rank, feature, score``), empty when nothing is shown."""
        results = self.results
        topic, mod = self.topic.currentText(), self.modality.currentText()
        if results is None or mod not in results.top_features:
            return pd.DataFrame(columns=["topic", "rank", "feature", "score"])
        frame = results.top_features[mod]
        rows = frame[frame["topic"] == topic].sort_values("rank")
        return rows.head(self.n_top.value()).reset_index(drop=True)

    def _sync_pickers(self) -> None:
        results = self.results
        topics = results.topic_names if results else []
        mods = [m for m in results.modality_names if m in results.top_features] if results else []
        what = self.layer.metadata.get(keys.COLOURING, DOMINANT) if results else None
        self._updating = True
        try:
            for box, items in ((self.topic, topics), (self.modality, mods)):
                if [box.itemText(i) for i in range(box.count())] != items:
                    box.clear()
                    box.addItems(items)
            if what in topics:
                self.topic.setCurrentText(what)
            elif what and what.startswith(WEIGHT_PREFIX) and what[len(WEIGHT_PREFIX):] in mods:
                self.modality.setCurrentText(what[len(WEIGHT_PREFIX):])
        finally:
            self._updating = False

    def _on_pick(self, _=None) -> None:
        if not self._updating:
            self.coherence.select(self.topic.currentText())
            self.draw()

    def refresh(self) -> None:
        """Follow the shown layer's run and colouring, then redraw."""
        self._sync_pickers()
        self.coherence.show_results(self.results, self.topic.currentText())
        self.draw()

    def draw(self) -> None:
        """Redraw the bar chart for the picked topic and modality."""
        figure = self.canvas.figure
        figure.clear()
        results = self.results
        if results is None:
            self.message.setText("No topic model run in the viewer.")
            self.canvas.draw_idle()
            return
        rows = self.shown_features()
        topic, mod = self.topic.currentText(), self.modality.currentText()
        self.message.setText(f"Run {results.run_name}: top {mod} features of {topic}")
        ax = figure.add_subplot(1, 1, 1)
        style_axes(ax, self.theme)
        if not rows.empty:
            k = results.topic_names.index(topic)
            color = topic_palette(results.n_topics)[k]
            labels = [str(f) for f in rows["feature"]][::-1]
            ax.barh(labels, rows["score"].to_numpy()[::-1], color=color)
        ax.set_xlabel("weight in the topic's profile")
        coherence = self.coherence.values
        value = coherence.get(topic) if coherence is not None else None
        spatial = "" if value is None or value != value else f" · Moran's I {value:.2f}"
        ax.set_title(f"{topic} · {mod}{spatial}", fontsize=9)
        self.canvas.draw_idle()
