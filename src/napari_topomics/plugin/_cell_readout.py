"""The "Cell readout" dock: click a cell to read its topic mix and modality weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ._colouring import match_positions, topic_palette
from ._follow import ResultsFollower
from ._mpl import figure_canvas, style_axes

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__all__ = ["CellReadoutWidget", "clicked_instance"]

_HINT = "Click a cell of the topic map to read its topic mix and modality weights."


def clicked_instance(layer: Layer, event: Any) -> Any | None:
    """The instance id (label id, or the ``index`` feature of a point/shape) under a click."""
    value = layer.get_value(
        event.position,
        view_direction=getattr(event, "view_direction", None),
        dims_displayed=getattr(event, "dims_displayed", None),
        world=True,
    )
    kind = type(layer).__name__.lower()
    if isinstance(value, tuple):  # multiscale labels: (level, value); shapes: (shape, vertex)
        value = value[0] if kind == "shapes" else value[-1]
    if value is None or (kind == "labels" and int(value) == 0):
        return None
    if kind == "labels":
        return int(value)
    features = layer.features
    if "index" in features.columns and 0 <= int(value) < len(features):
        return features["index"].iloc[int(value)]
    return None


class CellReadoutWidget(QWidget, ResultsFollower):
    """Topic proportions and modality weights of the last clicked cell.

    Parameters
    ----------
    napari_viewer
        The viewer; a mouse-press callback on it reads the cell under the cursor on the
        shown result layer.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel(_HINT)
        self.text.setWordWrap(True)
        self.canvas, self.theme = figure_canvas(napari_viewer, 4.0, 2.6)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.canvas)
        self.cell: dict[str, Any] | None = None
        self._shown: tuple = (None, None)
        self._bars: tuple | None = None  # (topic bars, weight bars) drawn for this run
        self._background = None  # the figure without its bars, for blitting a new cell
        self.canvas.mpl_connect("draw_event", self._on_full_draw)
        self._follow(napari_viewer)
        napari_viewer.mouse_drag_callbacks.append(self._on_click)
        self.destroyed.connect(lambda *_: self._disconnect(napari_viewer))

    def _disconnect(self, viewer: napari.Viewer) -> None:
        if self._on_click in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(self._on_click)

    def _on_click(self, viewer: napari.Viewer, event: Any) -> None:
        if getattr(event, "type", "mouse_press") != "mouse_press" or self.layer is None:
            return
        instance = clicked_instance(self.layer, event)
        if instance is not None:
            self.show_cell(instance)

    def refresh(self) -> None:
        """A new layer or run: forget the last cell (a recolouring of the same run keeps it)."""
        shown = (self.layer, self.results)
        if shown[1] is not None and all(a is b for a, b in zip(self._shown, shown, strict=True)):
            return  # same layer, same run: only the colouring changed
        self._shown = shown
        self._bars = self._background = None
        self.cell = None
        results = self.results
        self.text.setText(_HINT if results is not None else "No topic model run in the "
                          "viewer.")
        self.canvas.figure.clear()
        if results is not None:  # empty bars now, so even the first click only blits
            self._bars = self._make_bars(results.topic_names, results.modality_names,
                                         results.n_topics)
        self.canvas.draw_idle()

    def show_cell(self, instance_id: Any) -> dict[str, Any] | None:
        """Show the cell with this instance (label) id; None when the run lacks it."""
        results = self.results
        if results is None:
            return None
        row = int(match_positions(results, np.asarray([instance_id]))[0])
        if row < 0:
            self.cell = None
            self.text.setText(f"Cell {instance_id} is not in run {results.run_name!r}.")
            return None
        props = results.proportions.iloc[row]
        weights = results.modality_weights.iloc[row]
        p = props.to_numpy(np.float64)  # this cell only: O(K), not O(cells), per click
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -float(np.where(p > 0, p * np.log(p), 0.0).sum())
        self.cell = {
            "instance_id": instance_id,
            "obs_name": str(results.proportions.index[row]),
            "proportions": {str(k): float(v) for k, v in props.items()},
            "modality_weights": {str(k): float(v) for k, v in weights.items()},
            "dominant_topic": results.topic_names[int(np.argmax(p))],
            "topic_entropy": entropy,
        }
        self._draw(self.cell, results.n_topics)
        return self.cell

    def _draw(self, cell: dict[str, Any], n_topics: int) -> None:
        mix = ", ".join(f"{k} {v:.2f}" for k, v in cell["proportions"].items())
        weights = ", ".join(f"{k} {v:.2f}" for k, v in cell["modality_weights"].items())
        self.text.setText(
            f"<b>{cell['obs_name']}</b> (id {cell['instance_id']}): dominant "
            f"{cell['dominant_topic']}, entropy {cell['topic_entropy']:.2f} nats<br>"
            f"topics: {mix}<br>weights: {weights}"
        )
        topics = list(cell["proportions"])
        mods = list(cell["modality_weights"])
        if self._bars is None or len(self._bars[0]) != len(topics) or len(
                self._bars[1]) != len(mods):
            self._bars = self._make_bars(topics, mods, n_topics)
        # the same bars, new lengths: no new axes per click, and only the bars are redrawn
        for bar, value in zip(self._bars[0], list(cell["proportions"].values())[::-1],
                              strict=True):
            bar.set_width(value)
        for bar, value in zip(self._bars[1], list(cell["modality_weights"].values())[::-1],
                              strict=True):
            bar.set_width(value)
        if self._background is None:
            self.canvas.draw_idle()  # the full draw captures the background, then the bars
            return
        self.canvas.restore_region(self._background)
        self._blit_bars()

    def _blit_bars(self) -> None:
        figure = self.canvas.figure
        for bar in (*self._bars[0], *self._bars[1]):
            figure.draw_artist(bar)
        self.canvas.blit(figure.bbox)

    def _on_full_draw(self, event=None) -> None:
        """After matplotlib draws the figure (bars excluded): keep it, draw the bars on top."""
        if self._bars is None:
            self._background = None
            return
        self._background = self.canvas.copy_from_bbox(self.canvas.figure.bbox)
        self._blit_bars()

    def _make_bars(self, topics: list[str], mods: list[str], n_topics: int) -> tuple:
        figure = self.canvas.figure
        figure.clear()
        top, bottom = figure.subplots(2, 1, height_ratios=[max(n_topics, 2), 2])
        for ax in (top, bottom):
            style_axes(ax, self.theme)
        self._background = None
        topic_bars = top.barh(topics[::-1], [0.0] * len(topics),
                              color=topic_palette(n_topics)[::-1], animated=True)
        top.set_xlim(0, 1)
        top.set_title("topic mix", fontsize=9)
        weight_bars = bottom.barh(mods[::-1], [0.0] * len(mods), color="0.6", animated=True)
        bottom.set_xlim(0, 1)
        bottom.set_title("modality weights", fontsize=9)
        return list(topic_bars), list(weight_bars)
