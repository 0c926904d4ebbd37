"""The spatial options of a fitting run as the widget holds them, checked and mapped.

Qt-free: :func:`spatial_problem` says why the options cannot be fitted (shown while Run
stays disabled) and :func:`spatial_options` turns them into
:class:`~napari_topomics.workflow.FitConfig` fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: ``(value, label)`` of the spatial modes offered.
SPATIAL_MODES: tuple[tuple[str, str], ...] = (
    ("gcn", "Graph attention (GCN)"),
    ("sgc", "Smoothed features (SGC)"),
)
#: ``(value, label)`` of the neighbour graphs offered.
GRAPHS: tuple[tuple[str, str], ...] = (
    ("knn", "k nearest neighbours"),
    ("radius", "Within a radius"),
    ("delaunay", "Delaunay triangulation"),
)
#: Values of fresh spatial options.
SPATIAL_DEFAULTS: dict[str, Any] = {
    "spatial": False,
    "spatial_mode": "gcn",
    "graph": "knn",
    "n_neighbors": 6,
    "radius": None,
}


def parse_radius(text: str) -> float | str | None:
    """The radius typed: None when empty, a float when it reads as one, else the text."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def spatial_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``FitConfig`` spatial fields of the widget's ``values``.

    Graph options are passed only for a spatial run: a plain run measures its spatial
    coherence over FitConfig's default graph (6 nearest neighbours), not over the
    greyed-out choices.
    """
    out: dict[str, Any] = {"spatial": bool(values.get("spatial", False))}
    if out["spatial"]:
        graph = str(values.get("graph") or "knn")
        radius = values.get("radius")
        out.update(
            spatial_mode=str(values.get("spatial_mode") or "gcn"),
            graph=graph,
            n_neighbors=int(values.get("n_neighbors", 6)),
            radius=float(radius) if graph == "radius" and radius is not None else None,
        )
    return out


def spatial_problem(values: Mapping[str, Any]) -> str | None:
    """Why the spatial options cannot be fitted (a radius graph without a radius), or None."""
    if not values.get("spatial") or values.get("graph") != "radius":
        return None
    radius = values.get("radius")
    if radius is None or radius == "":
        return (
            "The radius neighbour graph needs a radius: enter the distance (in the cell "
            "coordinates' units) within which cells are neighbours, or choose another graph."
        )
    if isinstance(radius, bool) or not isinstance(radius, int | float):
        return f"Radius {radius!r} is not a number: enter a distance greater than 0."
    if not np.isfinite(radius) or radius <= 0:
        return f"Radius must be a number greater than 0; got {radius:g}."
    return None
