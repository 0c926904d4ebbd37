"""Write topic-model runs into SpatialData Zarr stores, list, read and delete them.

A run ``<run>`` is the table ``tables/topomics_<run>`` of the store (layout in
:mod:`._results_table`), annotating the element named by ``results.region``. Its model,
when saved, lives in ``<store>/topomics_models/<run>/`` (scvi-tools' ``model.pt``, plus
``adata.h5ad`` with ``save_model_data=True``): a plain folder with no Zarr metadata, which
``spatialdata.read_zarr`` and Zarr's consolidation ignore (checked by the tests), so the
store stays one self-contained folder.

Writes never touch the files of other elements; see :mod:`._store_journal` for how a
killed write or delete leaves the store readable and is recovered by the next one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ._errors import TopomicsInputError
from ._results import TopicResults, check_run_name
from ._store_journal import MODELS_DIR, begin, checkpoint, commit_delete, commit_write, recover
from ._store_journal import recover_all as _recover_all
from ._store_meta import StoreLayout, detect_layout

TABLE_PREFIX = "topomics_"
LOCK_TIMEOUT_S = 30.0
ANNOTATABLE = ("labels", "shapes", "points")


def run_table_name(run_name: str) -> str:
    """The table name of a run: ``topomics_<run_name>``."""
    return TABLE_PREFIX + check_run_name(run_name)


def _layout(store: Any) -> StoreLayout:
    if not isinstance(store, str | os.PathLike):
        raise TopomicsInputError(
            f"store must be the path of a SpatialData Zarr store; got {type(store).__name__}."
        )
    path = Path(store).expanduser().absolute()
    if not path.exists():
        raise TopomicsInputError(f"Store path {str(path)!r} does not exist.")
    layout = detect_layout(path) if path.is_dir() else None
    if layout is None:
        raise TopomicsInputError(
            f"{str(path)!r} is not a SpatialData Zarr store (no root zarr.json/.zgroup with "
            "spatialdata_attrs); save one with SpatialData.write(path) first."
        )
    return layout


def _open_root(layout: StoreLayout):
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_group(str(layout.path), mode="r")


def _group_keys(group, name: str) -> list[str]:
    if name not in group:
        return []
    return sorted(k for k in group[name].group_keys() if not k.startswith("."))


def _is_run_group(table_group) -> bool:
    return "uns" in table_group and "topomics" in table_group["uns"]


def _check_region(layout: StoreLayout, region: str | None) -> None:
    root = _open_root(layout)
    elements = {kind: _group_keys(root, kind) for kind in ANNOTATABLE}
    if region is None or not any(region in names for names in elements.values()):
        available = sorted(n for names in elements.values() for n in names)
        what = "results.region is None" if region is None else f"Element {region!r} is not"
        raise TopomicsInputError(
            f"{what} in store {str(layout.path)!r}"
            f"{'' if region is None else ' (labels, shapes or points)'}; "
            f"a run must annotate one of {available}."
        )


def _check_writable(layout: StoreLayout, table: str, run: str) -> None:
    folders = [layout.path, layout.path / "tables", layout.path / "tables" / table,
               layout.path / MODELS_DIR, layout.path / MODELS_DIR / run]
    for folder in folders:
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise TopomicsInputError(
                f"Store {str(layout.path)!r} is not writable ({str(folder)!r}); "
                "check its permissions or write to a copy."
            )


def _existing_kind(layout: StoreLayout, table: str) -> str | None:
    """``"run"``/``"foreign"`` if ``tables/<table>`` is on disk (any folder), else ``None``."""
    folder = layout.path / "tables" / table
    if not os.path.lexists(folder):
        return None
    run = layout.is_node(folder) and layout.is_node(folder / "uns" / "topomics")
    return "run" if run else "foreign"


def refuse_conflicting_run(
    layout: StoreLayout, table_name: str, run_name: str, overwrite: bool
) -> None:
    """Raise if ``tables/<table_name>`` exists and may not be replaced."""
    kind = _existing_kind(layout, table_name)
    if kind == "foreign":
        raise TopomicsInputError(
            f"Table {table_name!r} in {str(layout.path)!r} is not a topomics run; it is "
            "never overwritten. Choose another run name."
        )
    if kind == "run" and not overwrite:
        raise TopomicsInputError(
            f"Run {run_name!r} already exists in {str(layout.path)!r}; pass overwrite=True "
            "(--overwrite on the command line) to replace it or choose another run name."
        )


class _Locked:
    """Hold the store lock and recover stale staging folders; errors become one line."""

    def __init__(self, layout: StoreLayout):
        from ._atomic import directory_lock

        self.layout = layout
        self.recovered = 0
        self._lock = directory_lock(layout.path, LOCK_TIMEOUT_S)

    def __enter__(self) -> StoreLayout:
        try:
            self._lock.__enter__()
        except TimeoutError:
            raise TopomicsInputError(
                f"Store {str(self.layout.path)!r} is being modified by another process; "
                "try again when it has finished."
            ) from None
        try:
            self.recovered = _recover_all(self.layout)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self.layout

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)


def _abort(layout: StoreLayout, tx) -> None:
    """Undo (or finish, past the commit point) a failed operation; keep its error."""
    try:
        if tx.dir.exists():
            recover(layout, tx.dir)
    except Exception:  # left for the next write's recovery
        pass


def _stage_table(tx, table) -> None:
    from spatialdata import SpatialData

    with warnings.catch_warnings():
        # the table annotates an element of the target store, absent from the staged one
        warnings.filterwarnings("ignore", message=".*not present in the SpatialData object")
        warnings.filterwarnings("ignore", message=".*autosharding")
        SpatialData(tables={tx.table: table}).write(
            tx.staged_store, sdata_formats=tx.layout.container_format(),
            consolidate_metadata=False,
        )


def write_run(
    store: str | os.PathLike,
    results: TopicResults,
    *,
    model=None,
    overwrite: bool = False,
    save_model_data: bool | None = None,
) -> str:
    """Add a run's table (and model) to an on-disk SpatialData store, crash-safely.

    Parameters
    ----------
    store
        Path of an existing SpatialData Zarr store holding the element ``results.region``.
    results
        The run; its table becomes ``tables/topomics_<run_name>``.
    model
        Optional trained model, saved to ``<store>/topomics_models/<run_name>/``.
    overwrite
        Replace an existing run of the same name (never a table that is not a run).
    save_model_data
        Also save the model's registered AnnData, so the model loads without ``data``.
        ``None`` (default): only for spatial models, whose graph must come back with them.

    Returns
    -------
    The table name, ``topomics_<run_name>``.

    Notes
    -----
    Files of every other element stay byte-identical; the root metadata only gains the
    new table's consolidated entries. The table and model are written to a staging
    folder inside the store and swapped in atomically; a process killed at any point
    leaves the store readable with its old content, and the next write or delete
    finishes or undoes the interrupted one. Overwriting keeps the old run until the
    new one is in place (where ``renameat2`` is missing, i.e. outside Linux, the run is
    unlisted for the two renames that replace it; the store stays readable).
    """
    layout = _layout(store)
    if not isinstance(results, TopicResults):
        raise TopomicsInputError(
            f"results must be a TopicResults; got {type(results).__name__}."
        )
    table_name = run_table_name(results.run_name)
    _check_region(layout, results.region)
    _check_writable(layout, table_name, results.run_name)
    table = results.to_table()
    with _Locked(layout):
        refuse_conflicting_run(layout, table_name, results.run_name, overwrite)
        try:
            tx = begin(layout, table_name, results.run_name)
        except OSError as err:
            raise TopomicsInputError(
                f"Store {str(layout.path)!r} is not writable ({err.strerror})."
            ) from None
        try:
            checkpoint("staging")
            _stage_table(tx, table)
            if model is not None:
                if save_model_data is None:
                    save_model_data = bool(getattr(model, "spatial", False))
                model.save(str(tx.staged_model), overwrite=True, save_anndata=save_model_data)
            checkpoint("staged")
            commit_write(tx, has_model=model is not None)
        except BaseException:
            _abort(layout, tx)
            raise
    return table_name


def _tables_of(store_or_sdata: Any) -> dict[str, str]:
    """Run name → table name of the runs visible in a store path or SpatialData."""
    if hasattr(store_or_sdata, "tables") and not isinstance(store_or_sdata, str | os.PathLike):
        return {
            str(t.uns["topomics"].get("run_name", name.removeprefix(TABLE_PREFIX))): name
            for name, t in store_or_sdata.tables.items()
            if "topomics" in t.uns
        }
    layout = _layout(store_or_sdata)
    root = _open_root(layout)
    out = {}
    for name in _group_keys(root, "tables"):
        if _is_run_group(root["tables"][name]):
            out[name.removeprefix(TABLE_PREFIX)] = name
    return out


def list_runs(store_or_sdata: Any) -> list[str]:
    """The names of the topomics runs in a store (path) or a SpatialData object."""
    return sorted(_tables_of(store_or_sdata))


def _table_of_run(store_or_sdata: Any, run_name: str) -> str:
    check_run_name(run_name)
    tables = _tables_of(store_or_sdata)
    if run_name not in tables:
        raise TopomicsInputError(
            f"No run {run_name!r}; available runs: {sorted(tables)}."
        )
    return tables[run_name]


def read_run(store_or_sdata: Any, run_name: str) -> TopicResults:
    """Read one run back as :class:`TopicResults` (from a store path or a SpatialData)."""
    table_name = _table_of_run(store_or_sdata, run_name)
    if hasattr(store_or_sdata, "tables") and not isinstance(store_or_sdata, str | os.PathLike):
        return TopicResults.from_table(store_or_sdata.tables[table_name], run_name)
    from ._results_read import read_run_table

    layout = _layout(store_or_sdata)
    # only the parts a TopicResults is built from (not X again, nor the obs copies)
    table = read_run_table(layout.path / "tables" / table_name)
    return TopicResults.from_table(table, run_name)


def load_run_model(store: str | os.PathLike, run_name: str, data=None):
    """Load the model saved with a run.

    ``data`` is the data the model was trained on (the MuData/AnnData/dict given to
    ``from_data``, e.g. ``load_tissue_input(...).data``; if not yet set up, it is set up
    with default arguments, so data trained with custom ``layers``/covariates must be set
    up by the caller). It may be omitted only if the run was written with
    ``save_model_data=True``.
    """
    from ..models import MultimodalAmortizedLDA

    _table_of_run(store, run_name)
    folder = _layout(store).path / MODELS_DIR / run_name
    if not (folder / "model.pt").is_file():
        raise TopomicsInputError(
            f"Run {run_name!r} has no saved model ({str(folder)!r} is missing); write the run "
            "with write_run(..., model=model)."
        )
    if data is None and not (folder / "adata.h5ad").is_file():
        raise TopomicsInputError(
            f"The model of run {run_name!r} was saved without its data; pass data= (the "
            "MuData/AnnData it was trained on)."
        )
    return MultimodalAmortizedLDA.load(str(folder), adata=_registered_data(data))


def _registered_data(data):
    """``data`` ready for ``load``: a MuData/dict/SpatialData not yet set up is set up
    with the default arguments (a MuData is copied first, never modified)."""
    from anndata import AnnData

    from ..models import MultimodalAmortizedLDA

    if data is None or isinstance(data, AnnData):
        return data
    if hasattr(data, "mod"):
        if isinstance(data.uns.get("_flattened_ann_data"), AnnData):
            return data
        data = data.copy()
    registered = MultimodalAmortizedLDA.setup_data(data)
    return registered[0] if isinstance(registered, tuple) else registered


def delete_run(store: str | os.PathLike, run_name: str) -> None:
    """Remove a run's table and model from the store (topomics runs only, crash-safe)."""
    layout = _layout(store)
    table_name = run_table_name(run_name)
    _check_writable(layout, table_name, run_name)
    with _Locked(layout):
        kind = _existing_kind(layout, table_name)
        if kind != "run":
            runs = list_runs(layout.path)
            what = "is not a topomics run" if kind == "foreign" else "does not exist"
            raise TopomicsInputError(
                f"Cannot delete run {run_name!r}: table {table_name!r} {what}; runs: {runs}."
            )
        try:
            tx = begin(layout, table_name, run_name)
        except OSError as err:
            raise TopomicsInputError(
                f"Store {str(layout.path)!r} is not writable ({err.strerror})."
            ) from None
        try:
            commit_delete(tx)
        except BaseException:
            _abort(layout, tx)
            raise


def recover_store(store: str | os.PathLike) -> int:
    """Finish or undo interrupted writes/deletes now; returns how many were found.

    Every write and delete already does this first; call it to repair a store whose
    writer was killed before reading it with other tools.
    """
    locked = _Locked(_layout(store))
    with locked:
        return locked.recovered
