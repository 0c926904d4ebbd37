"""``napari-topomics info``: what a store or vendor folder holds."""

from __future__ import annotations

import argparse
from pathlib import Path


def _element_lines(sdata) -> list[str]:
    lines = []
    for kind in ("images", "labels", "shapes", "points"):
        elements = getattr(sdata, kind)
        for name, element in elements.items():
            lines.append(f"  {kind[:-1]:<6} {name}: {_element_size(kind, element)}")
    return lines


def _element_size(kind: str, element) -> str:
    if kind in ("images", "labels"):
        from spatialdata.models import get_axes_names

        data = element if not hasattr(element, "keys") else element["scale0"].ds[
            next(iter(element["scale0"].ds.data_vars))]
        axes = get_axes_names(data)
        size = " × ".join(f"{axis}={n}" for axis, n in zip(axes, data.shape, strict=False))
        scales = f", {len(element.keys())} scales" if hasattr(element, "keys") else ""
        return size + scales
    if kind == "shapes":
        return f"{len(element)} shapes"
    return f"{len(element)} points"


def _spatial_summary(results) -> str:
    """``spatial gcn model; mean Moran's I 0.43 over a 6-NN graph`` (or what is known)."""
    from ..io._results_spatial import graph_label, mean_coherence

    prov = results.provenance
    if "spatial" not in prov:
        kind = "model kind not recorded"
    elif prov["spatial"]:
        kind = f"spatial {prov.get('spatial_mode')} model"
    else:
        kind = "non-spatial model"
    mean = mean_coherence(results.spatial_coherence)
    if results.spatial_coherence is None:
        return f"{kind}; spatial coherence not measured"
    where = graph_label(prov) or "cell graph"
    value = "undefined" if mean is None else f"{mean:.2f}"
    return f"{kind}; mean Moran's I {value} over a {where}"


def describe(path: Path) -> str:
    """The text ``info`` prints for ``path``."""
    from ..io._read import detect_source, read_tissue
    from ..io._store import read_run
    from ..io._tables import list_tables

    kind = detect_source(path)
    sdata = read_tissue(path)
    lines = [f"{path} ({kind})", "coordinate systems: " + ", ".join(sdata.coordinate_systems)]
    lines.append("elements:")
    lines += _element_lines(sdata) or ["  (none)"]
    tables = list_tables(sdata)
    data_tables = [t for t in tables if not t.is_run]
    lines.append("tables:")
    for table in data_tables:
        annotates = ", ".join(table.elements) if table.elements else "nothing"
        lines.append(f"  {table.name}: {table.n_obs} cells × {table.n_vars} features, "
                     f"annotates {annotates}")
        if table.modalities:
            lines.append(f"    modalities ({table.modality_key}): "
                         f"{', '.join(table.modalities)}")
        if table.layers:
            lines.append(f"    layers: {', '.join(table.layers)}")
    if not data_tables:
        lines.append("  (none)")
    runs = [t for t in tables if t.is_run]
    lines.append("topic runs:")
    for table in runs:
        results = read_run(sdata, table.name.removeprefix("topomics_"))
        prov = results.provenance
        lines.append(
            f"  {results.run_name}: {results.n_topics} topics, modalities "
            f"{', '.join(results.modality_names)}, {prov.get('n_epochs', '?')} epochs, "
            f"seed {prov.get('seed', '?')}, {prov.get('date', '?')} (table {table.name})"
        )
        lines.append(f"    {_spatial_summary(results)}")
    if not runs:
        lines.append("  (none)")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """Run ``info``; returns the exit status."""
    print(describe(Path(args.path)))
    return 0
