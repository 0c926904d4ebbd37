"""Saving a run from napari: the widget's "Save to store" and the npe2 writer.

Both go through :func:`napari_topomics.io._store.write_run`, the crash-safe write-back
that leaves everything else in the store byte-identical. A tissue that has no store yet
(the demo sample, a vendor folder) is first written as a new SpatialData store.
Qt-free: the widget asks the questions (overwrite? where?) and calls these functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io._errors import TopomicsInputError
from . import _keys as keys

if TYPE_CHECKING:
    from spatialdata import SpatialData

    from ..io._results import TopicResults

#: ``layer.metadata`` key of the results painted on a layer (set by ``add_result_layers``).
RESULTS_KEY = keys.RESULTS
#: ``layer.metadata`` key of the trained model behind them (set by the fit widget).
MODEL_KEY = "topomics_model"


def is_store(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is an existing SpatialData zarr store (runs can be added to it)."""
    if path is None:
        return False
    from ..io._read import detect_source

    try:
        return detect_source(path) == "spatialdata"
    except TopomicsInputError:
        return False


def run_exists(store: str | os.PathLike, run_name: str) -> bool:
    """Whether the store already holds a run called ``run_name``."""
    from ..io._store import list_runs

    return run_name in list_runs(store)


def write_new_store(sdata: SpatialData, path: str | os.PathLike) -> str:
    """Write ``sdata``'s elements to a new store at ``path`` (``sdata`` itself is untouched).

    Raises
    ------
    TopomicsInputError
        When ``path`` exists already or cannot be written.
    """
    from spatialdata import SpatialData

    target = Path(path).expanduser().absolute()
    if target.exists():
        raise TopomicsInputError(
            f"{str(target)!r} exists and is not a SpatialData store; choose a new path "
            "ending in .zarr."
        )
    # A new object sharing the elements: writing binds the object to the path, and the
    # user's object must keep pointing where it did.
    copy = SpatialData(
        images=dict(sdata.images),
        labels=dict(sdata.labels),
        points=dict(sdata.points),
        shapes=dict(sdata.shapes),
        tables={k: v for k, v in sdata.tables.items() if "topomics" not in v.uns},
    )
    try:
        copy.write(target)
    except OSError as err:
        raise TopomicsInputError(
            f"Could not write a new store at {str(target)!r}: {err.strerror or err}."
        ) from None
    return str(target)


def save_run(
    store: str | os.PathLike,
    results: TopicResults,
    *,
    model: Any = None,
    overwrite: bool = False,
    sdata: SpatialData | None = None,
) -> str:
    """Write ``results`` (and ``model``) as a run of ``store``; returns the table name.

    When ``store`` does not exist and ``sdata`` is given, ``sdata`` is first written there
    as a new store. OS errors (read-only folders, full disks) become one-line
    :class:`TopomicsInputError` messages.
    """
    from ..io._store import write_run

    path = Path(store).expanduser()
    if not path.exists() and sdata is not None:
        write_new_store(sdata, path)
    try:
        return write_run(path, results, model=model, overwrite=overwrite)
    except OSError as err:
        raise TopomicsInputError(
            f"Could not write run {results.run_name!r} to {str(path)!r}: "
            f"{err.strerror or err}."
        ) from None


def _layers_of(args: tuple) -> list[tuple[Any, Mapping, str]]:
    if len(args) == 2 and isinstance(args[1], Mapping):  # single-layer writer: (data, meta)
        return [(args[0], args[1], "labels")]
    if len(args) == 1 and isinstance(args[0], Sequence):
        return [tuple(t) + ("",) * (3 - len(t)) for t in args[0]]  # type: ignore[misc]
    raise TopomicsInputError("The napari-topomics writer got no layer data.")


def write_run_to_store(path: str, *args: Any) -> list[str]:
    """npe2 writer: save the run shown by the selected layer(s) into the store at ``path``.

    Works as a multi-layer writer ``(path, [(data, meta, type), ...])`` and as a
    single-layer one ``(path, data, meta)``. The first layer whose metadata holds
    ``"topomics_results"`` is saved (with ``"topomics_model"`` when present). ``path`` is
    an existing SpatialData store, or a new path when the layer also carries its
    in-memory ``"sdata"``. An existing run of the same name is not replaced (use the
    widget's "Save to store", which asks).

    Returns
    -------
    list of str
        ``[path]``.
    """
    for _, meta, _ in _layers_of(args):
        metadata = meta.get("metadata") or {}
        results = metadata.get(RESULTS_KEY)
        if results is None:
            continue
        save_run(
            path,
            results,
            model=metadata.get(MODEL_KEY),
            overwrite=False,
            sdata=metadata.get(keys.SDATA),
        )
        return [str(path)]
    raise TopomicsInputError(
        "None of the layers to save holds a topic-model run (layer.metadata"
        "['topomics_results']); fit one with the 'Topic model' widget first."
    )
