"""Docks that follow the viewer's result layer and its colouring.

A dock shows the active layer's run; when the active layer shows no run, it keeps the
last result layer (still in the viewer), else the topmost one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._result_layers import colouring_event, layer_results

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from ..io._results import TopicResults

__all__ = ["ResultsFollower"]


class ResultsFollower:
    """Mixin: call :meth:`refresh` whenever the shown result layer or its colouring changes.

    Subclasses call :meth:`_follow` once, at the end of their ``__init__``, and implement
    :meth:`refresh`.
    """

    viewer: napari.Viewer
    layer: Layer | None = None

    def _follow(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.layer = None
        self._watched: list[Layer] = []
        viewer.layers.selection.events.active.connect(self._update_layer)
        viewer.layers.events.removed.connect(self._update_layer)
        viewer.layers.events.inserted.connect(self._update_layer)
        self._update_layer()

    @property
    def results(self) -> TopicResults | None:
        """The run shown (None when the viewer has no result layer)."""
        return layer_results(self.layer)

    def _pick_layer(self) -> Layer | None:
        active = self.viewer.layers.selection.active
        if layer_results(active) is not None:
            return active
        if self.layer is not None and self.layer in self.viewer.layers:
            if layer_results(self.layer) is not None:
                return self.layer
        for layer in reversed(self.viewer.layers):
            if layer_results(layer) is not None:
                return layer
        return None

    def _update_layer(self, event=None) -> None:
        layer = self._pick_layer()
        # the active layer is watched too: a run painted in place on it (already active, so
        # no selection event) announces itself only through its colouring event
        self._watch([layer, self.viewer.layers.selection.active])
        if layer is self.layer and event is not None and layer is not None:
            return
        self.layer = layer
        self.refresh()

    def _watch(self, layers: list) -> None:
        wanted = []
        for layer in layers:
            if layer is not None and all(layer is not w for w in wanted):
                wanted.append(layer)
        watched = self._watched
        for old in watched:
            if all(old is not w for w in wanted):
                try:
                    colouring_event(old).disconnect(self._on_colouring)
                except (RuntimeError, ValueError, TypeError):
                    pass
        for new in wanted:
            if all(new is not w for w in watched):
                colouring_event(new).connect(self._on_colouring)
        self._watched = wanted

    def _on_colouring(self, event=None) -> None:
        self._update_layer()  # a run may have been painted on (or removed from) the layer

    def refresh(self) -> None:  # pragma: no cover - implemented by the docks
        raise NotImplementedError
