"""Check, before a long fit, that its run can be written where the user asked."""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import TopomicsInputError
from ._read import detect_source
from ._results import check_run_name
from ._store import _layout, refuse_conflicting_run, run_table_name


def check_run_destination(store: str | os.PathLike, run_name: str, *, overwrite: bool) -> None:
    """Raise now what :func:`~napari_topomics.io.write_run` would raise after training.

    ``store`` is an existing SpatialData store, or a path where a new store will be made
    (for data read from a vendor folder): then its parent folder must be writable.

    Raises
    ------
    TopomicsInputError
        For an invalid run name; a run of that name without ``overwrite``; a table of that
        name that is not a topomics run; a store that is not writable; a destination that
        exists but is not a SpatialData store.
    """
    check_run_name(run_name)
    path = Path(store).expanduser().absolute()
    if not path.exists():
        parent = path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise TopomicsInputError(
                f"Cannot create the store {str(path)!r}: folder {str(parent)!r} is missing or "
                "not writable; choose another --output."
            )
        return
    if not path.is_dir() or detect_source(path) != "spatialdata":
        raise TopomicsInputError(
            f"Output {str(path)!r} exists and is not a SpatialData store; choose another path."
        )
    layout = _layout(path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise TopomicsInputError(
            f"Store {str(path)!r} is not writable; check its permissions or write to a copy."
        )
    refuse_conflicting_run(layout, run_table_name(run_name), run_name, overwrite)
