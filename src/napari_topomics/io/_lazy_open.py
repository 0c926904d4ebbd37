"""Open an AnnData with its matrix left on disk (issue 18: data bigger than memory)."""

from __future__ import annotations

from pathlib import Path

from anndata import AnnData

from ._errors import TopomicsInputError

#: AnnData parts read into memory; ``X`` alone stays on disk.
IN_MEMORY_PARTS = ("obs", "var", "uns", "obsm", "obsp", "varm", "varp", "layers")


def open_lazy(path: str | Path, table: str | None = None) -> AnnData:
    """Open an ``.h5ad`` file, an AnnData ``.zarr`` or a SpatialData store's table lazily.

    ``X`` stays on disk (anndata's CSR dataset; when dense, an h5py dataset or a dask array
    over the zarr array); ``obs``,
    ``var``, ``obsm``, ``obsp``, ``uns`` and ``layers`` are read into memory. A model built
    on it reads the matrix in chunks, and training loads only the rows each process trains
    on (``docs/distributed.md``). Register ``X``: a registered layer would be in memory.

    Parameters
    ----------
    path
        ``.h5ad`` file, AnnData zarr store, or SpatialData zarr store.
    table
        Table of a SpatialData store (required when it holds more than one).

    Raises
    ------
    TopomicsInputError
        When the path does not exist, is not an AnnData or names no such table.
    """
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise TopomicsInputError(f"{str(path)!r} does not exist.")
    if path.is_file():
        import h5py

        try:
            group = h5py.File(path, "r")
        except OSError as err:
            raise TopomicsInputError(
                f"{str(path)!r} is not an .h5ad file ({err})."
            ) from None
    else:
        import zarr

        group = zarr.open_group(str(path), mode="r")
        if "X" not in group and "tables" in group:
            group = _store_table(group["tables"], path, table)
    if "X" not in group or "obs" not in group:
        raise TopomicsInputError(
            f"{str(path)!r} holds no AnnData (no 'X' and 'obs'); give an .h5ad file, an "
            "AnnData .zarr or a SpatialData store with a table."
        )
    parts = {key: ad.io.read_elem(group[key]) for key in IN_MEMORY_PARTS if key in group}
    matrix = group["X"]
    if hasattr(matrix, "keys"):  # a sparse matrix is a group of data/indices/indptr
        matrix = ad.io.sparse_dataset(matrix)
    elif type(matrix).__module__.startswith("zarr"):  # dense: scvi reads dask, not zarr
        import dask.array as da

        matrix = da.from_zarr(matrix)
    return AnnData(X=matrix, **parts)


def _store_table(tables, path: Path, table: str | None):
    names = sorted(tables.group_keys()) if hasattr(tables, "group_keys") else sorted(tables)
    if table is None:
        if len(names) != 1:
            raise TopomicsInputError(
                f"The store {str(path)!r} holds the tables {names}; name one with table=."
            )
        table = names[0]
    if table not in names:
        raise TopomicsInputError(
            f"The store {str(path)!r} has no table {table!r}; it holds {names}."
        )
    return tables[table]
