"""Open big stores without stalling the viewer: read, colour and build layers off the GUI thread.

:func:`open_store` reads a SpatialData store (or vendor folder), builds every layer —
lazy multiscale images and labels, and each saved run's coloured labels layer (a lookup
table colormap, :mod:`._lut_colormap`) — in a napari thread worker, then adds the layers
to the viewer in one step on the GUI thread. :func:`paint_saved_run` does the same for one
run of a store whose elements are already open. Neither densifies a multiscale level:
napari reads the visible tiles of the level it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io._errors import TopomicsInputError
from . import _keys as keys

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from ._element_layers import LayerData

__all__ = ["build_layers", "open_store", "paint_saved_run", "saved_run_layer_data"]


def build_layers(layer_data: list[LayerData]) -> list[Layer]:
    """napari layers from layer data tuples (no viewer needed; safe in a worker thread)."""
    from napari.layers import Layer

    out = []
    for data, kwargs, layer_type in layer_data:
        made = Layer.create(data, dict(kwargs), layer_type)
        out.extend(made if isinstance(made, list) else [made])
    return out


def _add(viewer: napari.Viewer, layers: list[Layer]) -> list[Layer]:
    for layer in layers:
        viewer.layers.append(layer)
    return layers


def _add_stepwise(
    viewer: napari.Viewer, layers: list[Layer], on_done: Callable[[list[Layer]], Any] | None
) -> None:
    """Add one layer per pass of the event loop (napari's own cost per layer, not all at once)."""
    from qtpy.QtCore import QTimer

    pending = list(layers)

    def next_layer() -> None:
        if pending:
            viewer.layers.append(pending.pop(0))
            QTimer.singleShot(0, next_layer)
        elif on_done is not None:
            on_done(layers)

    next_layer()


def _run(
    viewer: napari.Viewer, build: Callable[[], list[Layer]], background: bool,
    on_done: Callable[[list[Layer]], Any] | None, on_error: Callable[[Exception], Any] | None,
):
    """Build layers (in a worker when ``background``) and add them on the GUI thread."""
    if not background:
        layers = _add(viewer, build())
        if on_done is not None:
            on_done(layers)
        return layers
    from napari.qt.threading import create_worker

    worker = create_worker(build, _start_thread=False)

    def done(layers: list[Layer]) -> None:
        _add_stepwise(viewer, layers, on_done)

    worker.returned.connect(done)
    if on_error is not None:
        worker.errored.connect(on_error)
    worker.start()
    return worker


def open_store(
    viewer: napari.Viewer,
    path: str | Path,
    *,
    coordinate_system: str | None = None,
    runs: bool = True,
    background: bool = True,
    on_done: Callable[[list[Layer]], Any] | None = None,
    on_error: Callable[[Exception], Any] | None = None,
):
    """Open a store or vendor folder into the viewer without blocking it.

    Parameters
    ----------
    viewer
        The viewer.
    path
        A SpatialData zarr store or vendor folder (see :func:`~napari_topomics.io.read_tissue`).
    coordinate_system
        The system to show (default: ``"global"``, else the fullest one).
    runs
        Also paint every saved run (as the reader does); False opens the elements only.
    background
        Read and build in a napari thread worker (returned, started); the layers are added
        when it returns. False: do it now and return the layers.
    on_done, on_error
        Called with the added layers, or with the error of a background open.

    Raises
    ------
    TopomicsInputError
        (Foreground only; a background open reports it to ``on_error``.) For a path that
        is not readable tissue data.
    """
    def build() -> list[Layer]:
        from ..io._read import read_tissue
        from ._element_layers import choose_coordinate_system, sdata_layer_data
        from ._reader import sdata_to_layer_data

        sdata = read_tissue(path)
        if runs:
            data = sdata_to_layer_data(sdata, source=str(path),
                                       coordinate_system=coordinate_system)
        else:
            system = choose_coordinate_system(sdata, coordinate_system)
            data = sdata_layer_data(sdata, system, source=str(path))
        return build_layers(data)

    return _run(viewer, build, background, on_done, on_error)


def _element_layer(viewer: napari.Viewer, path: str | Path | None, region: str | None):
    for layer in viewer.layers:
        meta = layer.metadata
        if meta.get(keys.ELEMENT) == region and keys.ROLE not in meta and keys.SDATA in meta:
            if path is None or meta.get(keys.SOURCE) in (None, str(path)):
                return layer
    return None


def saved_run_layer_data(sdata, results, coordinate_system: str, source: str | None):
    """The coloured layer data of a saved run on its element of ``sdata``."""
    from ._result_layers import result_layer_data

    return result_layer_data(sdata, results, coordinate_system, source=source)


def paint_saved_run(
    viewer: napari.Viewer,
    path: str | Path,
    run_name: str,
    *,
    background: bool = True,
    on_done: Callable[[list[Layer]], Any] | None = None,
    on_error: Callable[[Exception], Any] | None = None,
):
    """Paint a run saved in a store over its element, already open in the viewer.

    The run is read with :func:`~napari_topomics.io.read_run` (only the arrays a run is
    built from), coloured by dominant topic and added as a new labels layer drawing the
    element's (lazy, multiscale) data; the element's own layer is hidden under it. Reading
    and colouring run in a thread worker when ``background``.

    Raises
    ------
    TopomicsInputError
        When the run's element is not open in the viewer (open the store first).
    """
    from ..io import read_run

    def build() -> list[Layer]:
        results = read_run(path, run_name)
        element = _element_layer(viewer, path, results.region)
        if element is None:
            raise TopomicsInputError(
                f"The element {results.region!r} of run {run_name!r} is not open in the "
                f"viewer; open the store {str(path)!r} first."
            )
        meta = element.metadata
        data = saved_run_layer_data(meta[keys.SDATA], results,
                                    meta[keys.COORDINATE_SYSTEM], str(path))
        built = build_layers([data])
        built[0].metadata["topomics_hides"] = element.name
        return built

    def done(layers: list[Layer]) -> None:
        hidden = layers[0].metadata.pop("topomics_hides", None) if layers else None
        if hidden in viewer.layers:
            viewer.layers[hidden].visible = False
        if on_done is not None:
            on_done(layers)

    return _run(viewer, build, background, done, on_error)
