"""Crash-safe commit and recovery of run writes and deletes in a SpatialData store.

Each operation works in its own staging folder ``<store>/.topomics_staging/<id>/`` (the
same filesystem, hidden from ``spatialdata.read_zarr`` and from Zarr, which skip it):

* write: the new table is written there as a one-table SpatialData store and the model
  beside it; ``intent.json`` then records the inode numbers of the staged and the old
  table/model folders. The model is put in place first, then the table (the commit
  point), each by one atomic directory swap (``renameat2(RENAME_EXCHANGE)``) or rename;
  last the root consolidated metadata is updated by atomic replace. Where the swap is
  unsupported, an existing table is first unlisted from the consolidated metadata, then
  moved aside, then replaced (the run is briefly invisible but the store stays readable).
* delete: ``intent.json``, then the table's consolidated entries are dropped, then the
  table and model folders are moved into the staging folder and removed.

A process killed at any point leaves a staging folder. The next write or delete (holding
the store lock, so every staging folder it sees is stale) recovers it: a write whose
table swap happened is rolled forward, any other write is rolled back (old model and
table restored), a delete is completed. Renames keep inode numbers, which is how
recovery tells the staged folders from the old ones.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._atomic import exchange, flush_to_disk, inode, move, write_bytes_atomic
from ._store_meta import StoreLayout, sync_element

STAGING_DIR = ".topomics_staging"
MODELS_DIR = "topomics_models"


def checkpoint(step: str) -> None:
    """A no-op between commit steps; the safety tests replace it to kill a write there."""


@dataclass
class Transaction:
    """The paths of one write or delete of table ``table`` (run ``run``)."""

    layout: StoreLayout
    dir: Path
    table: str
    run: str

    @property
    def store(self) -> Path:
        return self.layout.path

    @property
    def element(self) -> str:
        return f"tables/{self.table}"

    @property
    def staged_store(self) -> Path:
        return self.dir / "staged"

    @property
    def staged_table(self) -> Path:
        return self.staged_store / "tables" / self.table

    @property
    def staged_model(self) -> Path:
        return self.dir / "model" / self.run

    @property
    def old_table(self) -> Path:
        return self.dir / "old" / "table" / self.table

    @property
    def old_model(self) -> Path:
        return self.dir / "old" / "model" / self.run

    @property
    def target_table(self) -> Path:
        return self.store / "tables" / self.table

    @property
    def target_model(self) -> Path:
        return self.store / MODELS_DIR / self.run

    def write_intent(self, intent: dict[str, Any]) -> None:
        data = json.dumps(intent | {"table": self.table, "run": self.run}).encode()
        write_bytes_atomic(self.dir / "intent.json", data, self.dir)


def begin(layout: StoreLayout, table: str, run: str) -> Transaction:
    """Create a fresh staging folder for one operation."""
    root = layout.path / STAGING_DIR
    root.mkdir(exist_ok=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return Transaction(layout, folder, table, run)


def _place(src: Path, dst: Path, parking: Path, before_parking=None) -> None:
    """Put ``src`` at ``dst``; an existing ``dst`` ends up at ``src`` (swap) or ``parking``.

    Without an atomic swap, ``before_parking()`` runs before ``dst`` is moved away.
    """
    if inode(dst) is None:
        move(src, dst)
    elif not exchange(src, dst):
        if before_parking is not None:
            before_parking()
        move(dst, parking)
        checkpoint("parked")
        move(src, dst)


def _finish(tx: Transaction) -> None:
    shutil.rmtree(tx.dir, ignore_errors=True)
    for folder in (tx.store / STAGING_DIR, tx.store / MODELS_DIR):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            pass


# ---------------------------------------------------------------------- write
def commit_write(tx: Transaction, has_model: bool) -> None:
    """Swap the staged table (and model) into the store, then update the metadata."""
    flush_to_disk(tx.dir)
    intent = {
        "op": "write",
        "has_model": has_model,
        "staged_table_ino": inode(tx.staged_table),
        "staged_model_ino": inode(tx.staged_model) if has_model else None,
        "old_table_ino": inode(tx.target_table),
        "old_model_ino": inode(tx.target_model),
    }
    tx.write_intent(intent)
    checkpoint("intent")
    if has_model:
        _place(tx.staged_model, tx.target_model, tx.old_model)
        checkpoint("model")
    if (tx.store / "tables").is_dir():
        # without a swap, unlist the old table first: readers never meet a missing folder
        _place(tx.staged_table, tx.target_table, tx.old_table,
               lambda: sync_element(tx.layout, tx.element, tx.dir, remove=True))
    else:  # no tables group yet: move in the staged one, which holds only this table
        move(tx.staged_store / "tables", tx.store / "tables")
    checkpoint("table")
    _roll_forward(tx, intent)


def _roll_forward(tx: Transaction, intent: dict[str, Any]) -> None:
    if not intent["has_model"] and intent["old_model_ino"] is not None:
        if inode(tx.target_model) == intent["old_model_ino"]:  # stale model of the old run
            move(tx.target_model, tx.old_model)
    sync_element(tx.layout, tx.element, tx.dir)
    checkpoint("metadata")
    _finish(tx)


def _roll_back(tx: Transaction, intent: dict[str, Any]) -> None:
    if inode(tx.target_table) is None and intent["old_table_ino"] is not None:
        if inode(tx.old_table) == intent["old_table_ino"]:  # parked, new one not yet in
            move(tx.old_table, tx.target_table)
    old_ino = intent["old_model_ino"]
    if intent["has_model"]:
        current = inode(tx.target_model)
        if current is not None and current == intent["staged_model_ino"]:
            holders = [
                p for p in (tx.staged_model, tx.old_model) if old_ino and inode(p) == old_ino
            ]
            if holders:
                _place(holders[0], tx.target_model, tx.dir / "discard" / tx.run)
            else:
                move(tx.target_model, tx.dir / "discard" / tx.run)
        elif current is None and old_ino is not None and inode(tx.old_model) == old_ino:
            move(tx.old_model, tx.target_model)
    sync_element(tx.layout, tx.element, tx.dir)
    _finish(tx)


# ---------------------------------------------------------------------- delete
def commit_delete(tx: Transaction) -> None:
    """Drop the table's metadata entries, then move its folders out and remove them."""
    intent = {
        "op": "delete",
        "table_ino": inode(tx.target_table),
        "model_ino": inode(tx.target_model),
    }
    tx.write_intent(intent)
    checkpoint("intent")
    _finish_delete(tx, intent)


def _finish_delete(tx: Transaction, intent: dict[str, Any]) -> None:
    sync_element(tx.layout, tx.element, tx.dir, remove=True)
    checkpoint("metadata")
    if intent["table_ino"] is not None and inode(tx.target_table) == intent["table_ino"]:
        move(tx.target_table, tx.old_table)
    checkpoint("table")
    if intent["model_ino"] is not None and inode(tx.target_model) == intent["model_ino"]:
        move(tx.target_model, tx.old_model)
    _drop_empty_tables_group(tx)
    _finish(tx)


def _drop_empty_tables_group(tx: Transaction) -> None:
    """Remove a ``tables`` group left empty (a store without tables gets its layout back)."""
    tables = tx.store / "tables"
    if not tables.is_dir() or any(p.name not in tx.layout.meta_files for p in tables.iterdir()):
        return
    sync_element(tx.layout, "tables", tx.dir, remove=True)
    move(tables, tx.dir / "old" / "tables")


# ---------------------------------------------------------------------- recovery
def _read_intent(folder: Path) -> dict[str, Any] | None:
    try:
        intent = json.loads((folder / "intent.json").read_bytes())
    except (OSError, ValueError):
        return None
    return intent if isinstance(intent, dict) and "op" in intent else None


def _committed(tx: Transaction, intent: dict[str, Any]) -> bool:
    current = inode(tx.target_table)
    return current is not None and current == intent["staged_table_ino"]


def recover(layout: StoreLayout, folder: Path) -> None:
    """Finish or undo the operation whose staging folder is ``folder``, then remove it."""
    intent = _read_intent(folder)
    if intent is None:  # killed while staging: nothing in the store was touched
        tx = Transaction(layout, folder, "", "")
        _finish(tx)
        return
    tx = Transaction(layout, folder, str(intent["table"]), str(intent["run"]))
    if intent["op"] == "delete":
        _finish_delete(tx, intent)
    elif _committed(tx, intent):
        _roll_forward(tx, intent)
    else:
        _roll_back(tx, intent)


def recover_all(layout: StoreLayout) -> int:
    """Recover every stale staging folder (call while holding the store lock)."""
    root = layout.path / STAGING_DIR
    if not root.is_dir():
        return 0
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        recover(layout, folder)
    if root.is_dir():
        for stray in root.iterdir():  # files (never created by us) are simply removed
            if stray.is_file():
                os.remove(stray)
        try:
            root.rmdir()
        except OSError:
            pass
    return len(folders)
