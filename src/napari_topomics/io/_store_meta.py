"""The on-disk layout of a SpatialData Zarr store and its consolidated metadata.

A SpatialData store (``spatialdata`` ≥ 0.5 writes Zarr v3, older versions Zarr v2) is a
Zarr group whose root metadata carries ``spatialdata_attrs``; each element is a group
``<type>/<name>``. When the store is consolidated, the root metadata (``zarr.json`` for
v3, ``.zmetadata`` for v2) also lists the metadata of every node, and readers such as
``spatialdata.read_zarr`` find elements through that list only.

This module edits that list for one table at a time: the entries of ``tables/<name>``
are recomputed from the files on disk by consolidating a metadata-only copy with Zarr
itself, merged into the root document, and written by atomic replace. Entries of every
other node are kept as they were.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._atomic import write_bytes_atomic

V3_META = ("zarr.json",)
V2_META = (".zgroup", ".zattrs", ".zarray")
ELEMENT_TYPES = ("images", "labels", "points", "shapes", "tables")


@dataclass(frozen=True)
class StoreLayout:
    """Where a store keeps its metadata."""

    path: Path
    zarr_format: int
    sdata_version: str

    @property
    def meta_files(self) -> tuple[str, ...]:
        """Names of per-node metadata files."""
        return V3_META if self.zarr_format == 3 else V2_META

    @property
    def consolidated_file(self) -> Path:
        """The root file that holds (or would hold) the consolidated metadata."""
        return self.path / ("zarr.json" if self.zarr_format == 3 else ".zmetadata")

    def is_node(self, path: Path) -> bool:
        """Whether ``path`` is a Zarr group or array directory."""
        names = ("zarr.json",) if self.zarr_format == 3 else (".zgroup", ".zarray")
        return any((path / name).is_file() for name in names)

    def container_format(self):
        """The spatialdata container format matching this store (for staged writes)."""
        from spatialdata._io.format import (
            SpatialDataContainerFormatV01,
            SpatialDataContainerFormatV02,
        )

        return SpatialDataContainerFormatV02() if self.zarr_format == 3 else (
            SpatialDataContainerFormatV01()
        )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def detect_layout(path: Path) -> StoreLayout | None:
    """The layout of the SpatialData store at ``path``, or ``None`` if it is not one."""
    root = _load_json(path / "zarr.json")
    if isinstance(root, dict) and root.get("node_type") == "group":
        attrs = (root.get("attributes") or {}).get("spatialdata_attrs")
        if not isinstance(attrs, dict):
            return None
        return StoreLayout(path, 3, str(attrs.get("version", "0.2")))
    if (path / ".zgroup").is_file():
        attrs = _load_json(path / ".zattrs") or {}
        sdata = attrs.get("spatialdata_attrs") if isinstance(attrs, dict) else None
        if isinstance(sdata, dict):
            return StoreLayout(path, 2, str(sdata.get("version", "0.1")))
        if "encoding-type" not in attrs and any((path / t).is_dir() for t in ELEMENT_TYPES):
            return StoreLayout(path, 2, "0.1")  # pre-versioned SpatialData store
    return None


def read_consolidated(layout: StoreLayout) -> dict[str, Any] | None:
    """The flat ``key -> metadata`` map of the root, or ``None`` if not consolidated."""
    doc = _load_json(layout.consolidated_file)
    if not isinstance(doc, dict):
        return None
    if layout.zarr_format == 3:
        cm = doc.get("consolidated_metadata")
        return dict(cm.get("metadata") or {}) if isinstance(cm, dict) else None
    return dict(doc.get("metadata") or {})


def under(key: str, prefix: str) -> bool:
    """Whether consolidated key ``key`` belongs to node ``prefix`` or its descendants."""
    return key == prefix or key.startswith(prefix + "/")


def element_entries(layout: StoreLayout, element: str, work: Path) -> dict[str, Any]:
    """Consolidated entries of ``tables`` and of ``element`` (e.g. ``tables/x``) from disk.

    Copies only the metadata files into ``work`` and lets Zarr consolidate the copy, so
    the entries are exactly what ``zarr.consolidate_metadata`` writes for the store.
    """
    import warnings

    import zarr

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if layout.zarr_format == 3:
        root_meta = {"zarr.json": {"attributes": {}, "zarr_format": 3, "node_type": "group"}}
    else:
        root_meta = {".zgroup": {"zarr_format": 2}, ".zattrs": {}}
    for name, doc in root_meta.items():
        (work / name).write_text(json.dumps(doc))
    parent = element.split("/")[0]
    for name in layout.meta_files:
        if (layout.path / parent / name).is_file():
            (work / parent).mkdir(exist_ok=True)
            shutil.copyfile(layout.path / parent / name, work / parent / name)
    source = layout.path / element
    for file in source.rglob("*"):
        if file.name in layout.meta_files and file.is_file():
            target = work / element / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(work), zarr_format=layout.zarr_format)
    entries = read_consolidated(StoreLayout(work, layout.zarr_format, layout.sdata_version))
    shutil.rmtree(work)
    return {k: v for k, v in (entries or {}).items() if under(k, parent)}


def _sort_key(key: str) -> tuple[int, str]:
    return key.count("/"), unicodedata.normalize("NFKC", key).casefold()


def merged(
    layout: StoreLayout, current: dict[str, Any], element: str, entries: dict[str, Any] | None
) -> dict[str, Any]:
    """``current`` with ``element``'s entries replaced by ``entries`` (removed if ``None``)."""
    out = {k: v for k, v in current.items() if not under(k, element)}
    if entries is not None:
        for key, value in entries.items():
            if under(key, element):
                out[key] = value
            else:  # the parent group (``tables``): added only where missing
                out.setdefault(key, value)
    if layout.zarr_format == 3:
        out = {k: out[k] for k in sorted(out, key=_sort_key)}
    return out


def write_consolidated(layout: StoreLayout, metadata: dict[str, Any], scratch: Path) -> None:
    """Replace the consolidated map in the root metadata (atomic, other fields kept)."""
    doc = _load_json(layout.consolidated_file)
    if layout.zarr_format == 3:
        doc["consolidated_metadata"]["metadata"] = metadata
    else:
        doc["metadata"] = metadata
    data = json.dumps(doc, indent=2, allow_nan=True).encode()
    write_bytes_atomic(layout.consolidated_file, data, scratch)


def sync_element(
    layout: StoreLayout, element: str, scratch: Path, *, remove: bool = False
) -> bool:
    """Make the consolidated entries of ``element`` match the disk; ``True`` if changed.

    ``remove=True`` drops them whatever the disk holds (the first step of a delete).
    A store without consolidated metadata is left alone.
    """
    current = read_consolidated(layout)
    if current is None:
        return False
    present = not remove and layout.is_node(layout.path / element)
    entries = element_entries(layout, element, scratch / "meta") if present else None
    new = merged(layout, current, element, entries)
    if new == current and list(new) == list(current):
        return False
    write_consolidated(layout, new, scratch)
    return True
