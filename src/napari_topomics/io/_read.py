"""Recognise and read tissue on disk: SpatialData zarr stores and vendor output folders.

Reading never writes into the folder it reads. ``spatialdata`` and ``spatialdata_io`` are
imported only when something is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import TopomicsInputError

if TYPE_CHECKING:
    from spatialdata import SpatialData

__all__ = ["SOURCES", "detect_source", "read_tissue"]

#: Source kinds :func:`detect_source` can return, in the order they are tried.
SOURCES: tuple[str, ...] = ("spatialdata", "xenium", "visium_hd", "visium", "merscope", "cosmx")

_ELEMENT_GROUPS = ("images", "labels", "points", "shapes", "tables")
_VISIUM_COUNTS = "filtered_feature_bc_matrix.h5"
_ACCEPTED = (
    "a SpatialData zarr store, or a vendor output folder: Visium (Space Ranger: "
    "spatial/tissue_positions*.csv + *filtered_feature_bc_matrix.h5), Visium HD "
    "(*feature_slice.h5 or binned_outputs/), Xenium (experiment.xenium), MERSCOPE "
    "(images/micron_to_mosaic_pixel_transform.csv), CosMx (*_exprMat_file.csv + "
    "*_metadata_file.csv + *_fov_positions_file.csv)"
)


def _zarr_root_attrs(path: Path) -> dict | None:
    """Attributes of the zarr group at ``path`` (v3 or v2), or None when it is no zarr group."""
    v3 = path / "zarr.json"
    if v3.is_file():
        try:
            meta = json.loads(v3.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("node_type") != "group":
            return None
        return dict(meta.get("attributes") or {})
    if (path / ".zgroup").is_file():
        attrs = path / ".zattrs"
        try:
            return dict(json.loads(attrs.read_text())) if attrs.is_file() else {}
        except (OSError, ValueError):
            return {}
    return None


def _is_spatialdata_store(path: Path) -> bool:
    attrs = _zarr_root_attrs(path)
    if attrs is None:
        return False
    if "spatialdata_attrs" in attrs:
        return True
    return any((path / group).is_dir() for group in _ELEMENT_GROUPS)


def _has(path: Path, pattern: str) -> bool:
    return next(iter(path.glob(pattern)), None) is not None


def _is_xenium(path: Path) -> bool:
    return (path / "experiment.xenium").is_file()


def _is_visium_hd(path: Path) -> bool:
    return _has(path, "*feature_slice.h5") or (path / "binned_outputs").is_dir()


def _is_visium(path: Path) -> bool:
    positions = _has(path, "spatial/tissue_positions*.csv")
    return positions and _has(path, f"*{_VISIUM_COUNTS}")


def _is_merscope(path: Path) -> bool:
    return (path / "images" / "micron_to_mosaic_pixel_transform.csv").is_file()


def _is_cosmx(path: Path) -> bool:
    return all(
        _has(path, f"*_{suffix}")
        for suffix in ("exprMat_file.csv", "metadata_file.csv", "fov_positions_file.csv")
    )


_DETECTORS: dict[str, Callable[[Path], bool]] = {
    "spatialdata": _is_spatialdata_store,
    "xenium": _is_xenium,
    "visium_hd": _is_visium_hd,
    "visium": _is_visium,
    "merscope": _is_merscope,
    "cosmx": _is_cosmx,
}


def _existing_dir(path: str | Path) -> Path:
    if not isinstance(path, str | Path):
        raise TopomicsInputError(
            f"Expected a path (str or pathlib.Path), got {type(path).__name__}: {path!r}."
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise TopomicsInputError(f"Path does not exist: {p}; expected {_ACCEPTED}.")
    if not p.is_dir():
        raise TopomicsInputError(f"Not a folder: {p}; expected {_ACCEPTED}.")
    return p


def detect_source(path: str | Path) -> str:
    """Say what kind of tissue data a folder holds.

    Parameters
    ----------
    path
        A SpatialData zarr store or a vendor output folder.

    Returns
    -------
    str
        ``"spatialdata"`` for a SpatialData zarr store, else the vendor: ``"xenium"``,
        ``"visium_hd"``, ``"visium"``, ``"merscope"`` or ``"cosmx"`` (see :data:`SOURCES`),
        recognised by the files that vendor's ``spatialdata_io`` reader needs.

    Raises
    ------
    TopomicsInputError
        For a missing path, a file, or a folder of none of these kinds.
    """
    p = _existing_dir(path)
    for kind, detect in _DETECTORS.items():
        if detect(p):
            return kind
    if _zarr_root_attrs(p) is not None:
        raise TopomicsInputError(
            f"{p} is a zarr group but not a SpatialData store (no spatialdata_attrs and none "
            f"of the groups {list(_ELEMENT_GROUPS)}); expected {_ACCEPTED}."
        )
    raise TopomicsInputError(f"Unrecognised tissue folder: {p}; expected {_ACCEPTED}.")


def _safe_element_name(name: str) -> str:
    """A SpatialData element name made from a folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")
    return cleaned or "visium"


def _visium_kwargs(path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Give the Visium reader a ``dataset_id`` when the file names carry no prefix."""
    if kwargs.get("dataset_id") is not None:
        return kwargs
    counts = str(kwargs.get("counts_file", _VISIUM_COUNTS))
    if (path / counts).is_file():
        return {**kwargs, "dataset_id": _safe_element_name(path.name)}
    prefixed = sorted(f.name for f in path.glob(f"*_{counts}") if f.is_file())
    if len(prefixed) > 1:
        raise TopomicsInputError(
            f"Several Visium count files in {path}: {prefixed}; pass dataset_id= (the prefix "
            f"before '_{counts}') to choose one."
        )
    return kwargs


def _vendor_kwargs(source: str, path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    if source == "visium":
        return _visium_kwargs(path, kwargs)
    if source == "visium_hd":
        # the reader's current default, set explicitly to avoid its FutureWarning
        return {"load_segmentations_only": False, **kwargs}
    return kwargs


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_tissue(
    path: str | Path, *, vendor: str | None = None, **reader_kwargs: Any
) -> SpatialData:
    """Read a SpatialData store or a vendor output folder into a SpatialData object.

    Parameters
    ----------
    path
        The store or folder (see :func:`detect_source`).
    vendor
        Skip detection and use this reader: one of :data:`SOURCES`.
    **reader_kwargs
        Passed to ``spatialdata.read_zarr`` or to the ``spatialdata_io`` reader. For Visium
        folders whose file names have no ``<id>_`` prefix, ``dataset_id`` defaults to the
        folder name.

    Returns
    -------
    SpatialData
        Nothing is written into ``path``.

    Raises
    ------
    TopomicsInputError
        For a path that is missing or not recognised, an unknown ``vendor``, or a reader
        that fails on the folder (its error is chained).
    """
    p = _existing_dir(path)
    if vendor is None:
        source = detect_source(p)
    elif vendor in SOURCES:
        source = vendor
    else:
        raise TopomicsInputError(
            f"Unknown vendor {vendor!r} for {p}; choose one of {list(SOURCES)} or leave it "
            "out to detect it."
        )
    kwargs = _vendor_kwargs(source, p, dict(reader_kwargs))
    try:
        if source == "spatialdata":
            import spatialdata

            return spatialdata.read_zarr(p, **kwargs)
        import spatialdata_io

        reader = getattr(spatialdata_io, source)
        return reader(p, **kwargs)
    except TopomicsInputError:
        raise
    except Exception as err:  # any reader failure is bad input to report
        raise TopomicsInputError(
            f"Could not read {p} as {source} data: {_first_line(err)}"
        ) from err
