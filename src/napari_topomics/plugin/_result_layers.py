"""A run's results as napari layers: coloured labels (or points) and centroid points.

Colouring only reads the :class:`~napari_topomics.io._results.TopicResults` stored on the
layer (``layer.metadata["topomics_results"]``); switching what is coloured never refits.
Every recolouring emits ``layer.events.topomics_colouring`` so the docks can follow.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError
from . import _keys as keys
from ._colouring import (
    DOMINANT,
    TRANSPARENT,
    Colouring,
    colouring_choices,
    compute_colouring,
    labels_colormap,
    match_positions,
    results_features,
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer
    from spatialdata import SpatialData

    from ..io._results import TopicResults
    from ._element_layers import LayerData

__all__ = [
    "COLOURING_EVENT",
    "MAX_POINTS",
    "check_points_size",
    "add_result_layers",
    "color_by",
    "colouring_event",
    "layer_colouring",
    "layer_results",
    "result_layer_data",
    "restore_layer",
]

COLOURING_EVENT = "topomics_colouring"
_LABELS, _POINTS = "labels", "points"
_PAINTABLE = ("labels", "points", "shapes")
_REQUESTED = "topomics_colouring_requested"
#: Most centroid points a run is shown with. Measured (benchmarks/bench_viewer_scale.py, shared
#: 2-core machine): at 10⁵ points napari's points layer froze the viewer 1.8 s when added and
#: ~1 s per recolouring; the cost grows with the points, so 25,000 keeps each under ~0.3 s.
MAX_POINTS = 25_000


def _layer_type(layer: Layer) -> str:
    return type(layer).__name__.lower()


def layer_results(layer: Layer | None) -> TopicResults | None:
    """The run painted on ``layer``, or None."""
    if layer is None:
        return None
    return getattr(layer, "metadata", {}).get(keys.RESULTS)


def colouring_event(layer: Layer):
    """``layer.events.topomics_colouring``, added to the layer's events when missing."""
    if not hasattr(layer.events, COLOURING_EVENT):
        layer.events.add(**{COLOURING_EVENT: None})
    return getattr(layer.events, COLOURING_EVENT)


def _aligned_colors(
    results: TopicResults, colouring: Colouring, element_ids: np.ndarray | None
) -> np.ndarray:
    """One RGBA row per element instance (transparent where the run has no such cell)."""
    if element_ids is None:
        return colouring.colors
    pos = match_positions(results, element_ids)
    colors = np.tile(TRANSPARENT, (len(pos), 1))
    colors[pos >= 0] = colouring.colors[pos[pos >= 0]]
    return colors


def _element_ids(layer: Layer, results: TopicResults) -> np.ndarray | None:
    """Instance ids of a points/shapes layer's rows (None: rows are the run's cells)."""
    if layer.metadata.get(keys.ROLE) == _POINTS:
        return None
    features = layer.features
    if "index" not in features.columns:
        raise TopomicsInputError(
            f"Layer {layer.name!r} has no features column 'index' with the instance ids of "
            f"its {_layer_type(layer)}; cannot match them to run {results.run_name!r}."
        )
    return features["index"].to_numpy()


def _check_paintable(layer: Layer, results: TopicResults) -> None:
    """Raise, before anything changes, when ``results`` cannot be painted on ``layer``."""
    kind = _layer_type(layer)
    if kind not in _PAINTABLE:
        raise TopomicsInputError(
            f"Layer {layer.name!r} is a {kind} layer; runs are painted on labels, points "
            "or shapes layers."
        )
    if kind == "labels":
        if results.instance_ids is None:
            raise TopomicsInputError(
                f"Run {results.run_name!r} has no instance ids (label ids of its cells), so "
                f"it cannot be painted on labels layer {layer.name!r}."
            )
        return
    ids = _element_ids(layer, results)
    if ids is not None and results.instance_ids is None:
        raise TopomicsInputError(
            f"Run {results.run_name!r} has no instance ids, so it cannot be matched to the "
            f"{kind} of layer {layer.name!r}."
        )


def _features(results: TopicResults, element_ids: np.ndarray | None) -> pd.DataFrame:
    """Per-cell values for ``layer.features``, one row per element instance when given."""
    frame = results_features(results)
    if element_ids is None:
        return frame
    pos = match_positions(results, element_ids)
    aligned = frame.reindex(pd.Index(pos)).reset_index(drop=True)
    aligned["index"] = np.asarray(element_ids)
    return aligned


def _link(layers: list[Layer]) -> None:
    """Make the layers of one run recolour together."""
    for layer in layers:
        layer.metadata[keys.LINKED] = [weakref.ref(o) for o in layers if o is not layer]


def _linked(layer: Layer) -> list[Layer]:
    results = layer_results(layer)
    alive = (ref() for ref in layer.metadata.get(keys.LINKED, ()))
    return [other for other in alive if other is not None and layer_results(other) is results]


def _prepare(layer: Layer, what: str, linked: bool) -> list[tuple[Layer, Colouring, Any]]:
    """Everything a recolouring sets, computed without touching the layers (thread-safe).

    One ``(layer, colouring, colormap or face colours)`` per layer to recolour.
    """
    results = layer_results(layer)
    if results is None:
        raise TopomicsInputError(
            f"Layer {layer.name!r} shows no topic model run (no metadata "
            f"{keys.RESULTS!r}); fit one or open a store with a run."
        )
    _check_paintable(layer, results)
    colouring = compute_colouring(results, what)
    targets = [layer, *(_linked(layer) if linked else [])]
    out = []
    for target in targets:
        if _layer_type(target) == "labels":
            payload = labels_colormap(results, colouring)
        else:
            payload = _aligned_colors(results, colouring, _element_ids(target, results))
        out.append((target, colouring, payload))
    return out


def _apply(prepared: list[tuple[Layer, Colouring, Any]]) -> Colouring:
    """Set prepared colours on their layers in one step, then announce them (GUI thread)."""
    for layer, colouring, payload in prepared:
        if _layer_type(layer) == "labels":
            layer.colormap = payload
        else:
            layer.face_color = payload
        layer.metadata[keys.COLOURING] = colouring.what
        layer.metadata[keys.COLOURING_DATA] = colouring
    for layer, colouring, _ in prepared:
        colouring_event(layer)(value=colouring.what)
    return prepared[0][1]


def layer_colouring(layer: Layer | None) -> Colouring | None:
    """The colouring shown on a result layer (kept from when it was painted), or None."""
    results = layer_results(layer)
    if results is None:
        return None
    what = layer.metadata.get(keys.COLOURING, DOMINANT)
    cached = layer.metadata.get(keys.COLOURING_DATA)
    if cached is not None and cached.what == what:
        return cached
    colouring = compute_colouring(results, what)
    layer.metadata[keys.COLOURING_DATA] = colouring
    return colouring


def color_by(
    layer: Layer, what: str = DOMINANT, *, linked: bool = True, background: bool = False
):
    """Recolour a result layer by ``what``: ``"dominant_topic"``, a topic or ``"weight:<mod>"``.

    Only the stored results are read; nothing is refitted, and the layer is not rebuilt:
    its colormap (labels) or face colours (points, shapes) are replaced in one step. With
    ``linked``, the other layers :func:`add_result_layers` made for the same run (labels
    and centroid points) are recoloured too.

    Parameters
    ----------
    background
        Compute the colours in a napari thread worker and apply them on the GUI thread
        when ready (for large runs: the viewer stays responsive). Returns the started
        worker instead of the colouring; checks still raise at once.

    Raises
    ------
    TopomicsInputError
        For a layer without a run, or a choice the run does not have.
    """
    if not background:
        prepared = _prepare(layer, what, linked)
        layer.metadata[_REQUESTED] = what  # only once the choice is known to be valid
        return _apply(prepared)
    results = layer_results(layer)
    if results is None or what not in colouring_choices(results):
        _prepare(layer, what, linked)  # raises the message
    _check_paintable(layer, results)
    from napari.qt.threading import create_worker

    layer.metadata[_REQUESTED] = what
    worker = create_worker(_prepare, layer, what, linked, _start_thread=False)

    def apply_latest(prepared: list) -> None:
        # a later request supersedes this one: colours computed out of order are dropped
        if layer.metadata.get(_REQUESTED) == what:
            _apply(prepared)

    worker.returned.connect(apply_latest)
    worker.start()
    return worker


def _run_metadata(results: TopicResults, role: str | None, what: str) -> dict[str, Any]:
    meta: dict[str, Any] = {keys.RESULTS: results, keys.COLOURING: what,
                            keys.RUN: results.run_name, keys.REGION: results.region}
    if role is not None:
        meta[keys.ROLE] = role
    return meta


def _attach(layer: Layer, results: TopicResults, what: str) -> None:
    """Store ``results`` on ``layer`` (keeping its own colours once, to restore them)."""
    if keys.RESULTS not in layer.metadata and keys.ROLE not in layer.metadata:
        original: dict[str, Any] = {"features": layer.features.copy()}
        if _layer_type(layer) == "labels":
            original["colormap"] = layer.colormap
        else:
            original["face_color"] = np.array(layer.face_color, copy=True)
        layer.metadata[keys.ORIGINAL] = original
    layer.metadata.update(_run_metadata(results, layer.metadata.get(keys.ROLE), what))
    ids = None if _layer_type(layer) == "labels" else _element_ids(layer, results)
    layer.features = _features(results, ids)


def restore_layer(layer: Layer) -> None:
    """Undo :func:`add_result_layers` on a layer of the user's that it coloured in place."""
    original = layer.metadata.pop(keys.ORIGINAL, None)
    for key in (keys.RESULTS, keys.COLOURING, keys.COLOURING_DATA, keys.RUN, keys.REGION,
                keys.LINKED, _REQUESTED):
        layer.metadata.pop(key, None)
    if original is None:
        return
    layer.features = original["features"]
    if "colormap" in original:
        layer.colormap = original["colormap"]
    else:
        layer.face_color = original["face_color"]
    colouring_event(layer)(value=None)


def _find_role(viewer: napari.Viewer, results: TopicResults, role: str) -> Layer | None:
    for layer in viewer.layers:
        meta = layer.metadata
        if (meta.get(keys.ROLE) == role and meta.get(keys.RUN) == results.run_name
                and meta.get(keys.REGION) == results.region):
            return layer
    return None


def _find_source(viewer: napari.Viewer, region: str | None) -> Layer | None:
    """The user's layer showing element ``region`` (by metadata, else by name)."""
    if region is None:
        return None
    candidates = [ly for ly in viewer.layers if _layer_type(ly) in _PAINTABLE
                  and keys.ROLE not in ly.metadata]
    for layer in candidates:
        if layer.metadata.get(keys.ELEMENT) == region:
            return layer
    return next((ly for ly in candidates if ly.name == region), None)


def _copy_layer(viewer: napari.Viewer, source: Layer, results: TopicResults, what: str):
    """A new result layer drawing ``source``'s data (shared, not copied)."""
    meta = {k: v for k, v in source.metadata.items() if k not in (keys.ORIGINAL, keys.LINKED)}
    meta.update(_run_metadata(results, _LABELS, what))
    common = {"name": f"{results.run_name}: {results.region}", "affine": source.affine,
              "metadata": meta}
    if _layer_type(source) == "labels":
        return viewer.add_labels(source.data, multiscale=source.multiscale, opacity=0.9,
                                 **common)
    if _layer_type(source) == "points":
        return viewer.add_points(source.data, size=source.size, features=source.features,
                                 border_width=0, **common)
    return viewer.add_shapes(source.data, shape_type=source.shape_type,
                             features=source.features, edge_width=0, **common)


def _centroid_layer(viewer: napari.Viewer, results: TopicResults, what: str, size: float):
    yx = results.coordinates[["y", "x"]].to_numpy(np.float64)
    return viewer.add_points(
        yx, size=size, name=f"{results.run_name}: {results.region} centroids",
        metadata=_run_metadata(results, _POINTS, what), border_width=0,
    )


def check_points_size(results: TopicResults) -> None:
    """Refuse a centroid points layer napari could not keep interactive (see MAX_POINTS)."""
    n = len(results.proportions)
    if n > MAX_POINTS:
        raise TopomicsInputError(
            f"Run {results.run_name!r} has {n:,} cells; napari stays interactive with at most "
            f"{MAX_POINTS:,} points, so its cells are not shown as centroid points. Paint it on "
            f"the labels layer of its element ({results.region!r}) instead."
        )


def _point_size(results: TopicResults) -> float:
    xy = results.coordinates.to_numpy() if results.coordinates is not None else np.zeros((1, 2))
    if len(xy) < 2:
        return 10.0
    area = float(np.prod(np.ptp(xy, axis=0))) or 1.0
    return float(np.sqrt(area / len(xy)) * 0.6)


def add_result_layers(
    viewer: napari.Viewer,
    results: TopicResults,
    labels_layer: Layer | None = None,
    *,
    points: bool = False,
    colouring: str = DOMINANT,
) -> list[Layer]:
    """Paint a run on the viewer, reusing the layers of an earlier call for the same run.

    Parameters
    ----------
    viewer
        The napari viewer.
    results
        The run.
    labels_layer
        The labels (or circles/points/shapes) layer to colour in place. None: reuse this
        run's result layer, else add a new one drawing the data of the viewer's layer of
        the run's element (``results.region``), else fall back to centroid points.
    points
        Also show (or update) a points layer at the cell centroids, coloured the same.
    colouring
        What to colour by (see :func:`color_by`).

    Returns
    -------
    list of Layer
        The coloured layers (labels first, then points).
    """
    # every check first: a run that cannot be painted changes nothing
    if colouring not in colouring_choices(results):
        compute_colouring(results, colouring)  # raises the message
    target = labels_layer
    if target is None:
        target = _find_role(viewer, results, _LABELS)
    source = None
    if target is None:
        source = _find_source(viewer, results.region)
    if target is not None or source is not None:
        _check_paintable(target if target is not None else source, results)
    if target is None and source is None:
        points = True
    if points and _find_role(viewer, results, _POINTS) is None and results.coordinates is None:
        raise TopomicsInputError(
            f"Run {results.run_name!r} has no cell coordinates, so it cannot be shown as "
            "points; paint it on the labels layer of its element instead."
        )
    if points and _find_role(viewer, results, _POINTS) is None:
        check_points_size(results)
    if target is None and source is not None:
        target = _copy_layer(viewer, source, results, colouring)
    out = []
    if target is not None:
        _attach(target, results, colouring)
        color_by(target, colouring)
        out.append(target)
    if points:
        layer = _find_role(viewer, results, _POINTS)
        if layer is None:
            layer = _centroid_layer(viewer, results, colouring, _point_size(results))
        elif results.coordinates is not None:
            layer.data = results.coordinates[["y", "x"]].to_numpy(np.float64)
        _attach(layer, results, colouring)
        color_by(layer, colouring)
        out.append(layer)
    _link(out)
    viewer.layers.selection.active = out[0]
    return out


def result_layer_data(
    sdata: SpatialData,
    results: TopicResults,
    coordinate_system: str,
    *,
    source: str | None = None,
    vendor: str | None = None,
    colouring: str = DOMINANT,
) -> LayerData:
    """A coloured layer data tuple reopening a run stored in ``sdata`` (for the reader).

    The run's element is drawn again (labels, circles or polygons) with the colours built
    in; without the element in ``sdata`` the run is shown as points at its coordinates.
    """
    from ._element_layers import element_layer_data

    colour = compute_colouring(results, colouring)
    base = None
    if results.region is not None and results.region in sdata:
        base = element_layer_data(sdata, results.region, coordinate_system,
                                  source=source, vendor=vendor)
    if base is None or base[2] == "image":
        if results.coordinates is None:
            raise TopomicsInputError(
                f"Run {results.run_name!r} has neither its element {results.region!r} in "
                "the store nor cell coordinates; nothing to draw."
            )
        check_points_size(results)
        data = results.coordinates[["y", "x"]].to_numpy(np.float64)
        kwargs: dict[str, Any] = {"size": _point_size(results), "border_width": 0,
                                  "metadata": {}}
        role, layer_type, ids = _POINTS, "points", None
    else:
        data, kwargs, layer_type = base
        kwargs = dict(kwargs)
        role = _LABELS
        ids = None if layer_type == "labels" else kwargs["features"]["index"].to_numpy()
    meta = {k: v for k, v in kwargs["metadata"].items()}
    meta.update(_run_metadata(results, role, colouring))
    meta[keys.COLOURING_DATA] = colour
    kwargs["metadata"] = meta
    kwargs["name"] = f"{results.run_name}: {results.region}"
    if layer_type == "labels":
        kwargs.update(colormap=labels_colormap(results, colour),
                      features=results_features(results), opacity=0.9)
    else:
        kwargs["face_color"] = _aligned_colors(results, colour, ids)
        kwargs["features"] = _features(results, ids)
        for key in ("border_color", "edge_color"):
            kwargs.pop(key, None)
    return data, kwargs, layer_type
