"""Crash safety of write_run/delete_run: SIGKILL at every commit step, recovery, locking.

Each kill test forks the test process (no re-import), runs the write in the child and
kills it with SIGKILL when it reaches a named step (the journal's ``checkpoint`` hook, a
Zarr chunk write of the staged table, or the model save) or after a delay. The parent
then checks that plain ``spatialdata.read_zarr`` reads the store without warnings, that
every old element is intact, and that the run is either absent/old or complete/new;
then recovery (explicit, or by the next write) must leave no staging data behind.
"""

# ruff: noqa: F811  (pytest fixtures are imported from _store_fixtures and used as arguments)

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import sys
import time

import pytest
import torch
from _store_fixtures import (  # noqa: F401  (fixtures)
    RUN,
    assert_elements_equal,
    consolidated,
    file_hashes,
    other_results,
    read_store,
    results,
    run_template,
    store,
    store_template,
    store_with_run,
    tissue,
    trained,
    zarr_reconsolidated,
)

from napari_topomics.io import _store, _store_journal
from napari_topomics.io._atomic import directory_lock
from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._store import (
    delete_run,
    list_runs,
    read_run,
    recover_store,
    write_run,
)

torch.set_num_threads(1)
pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="kill tests fork (Linux)"
)
STAGING = ".topomics_staging"


def _block(marker):
    marker.write_text("reached")
    time.sleep(120)


def _arm(kind: str, at, marker) -> None:
    """In the child: make the write block (to be killed) at step ``at`` of ``kind``."""
    if kind == "checkpoint":
        seen = {"n": 0}
        step, nth = at if isinstance(at, tuple) else (at, 1)

        def hook(name):
            if name == step:
                seen["n"] += 1
                if seen["n"] == nth:
                    _block(marker)

        _store_journal.checkpoint = hook
        _store.checkpoint = hook
    elif kind == "zarr_write":  # the at-th chunk/metadata file of the staged table
        from zarr.storage import LocalStore

        original, count = LocalStore.set, {"n": 0}

        async def slow_set(self, key, value):
            if STAGING in str(self.root):
                count["n"] += 1
                if count["n"] == at:
                    _block(marker)
            return await original(self, key, value)

        LocalStore.set = slow_set
    elif kind == "no_exchange":
        _store_journal.exchange = lambda a, b: False
        _arm("checkpoint", at, marker)


def _killed(tmp_path, action, *arms, delay: float | None = None, marker=None) -> None:
    """Run ``action()`` in a forked child; SIGKILL it at the armed step (when it creates
    ``marker``) or after ``delay`` seconds."""
    marker = marker or tmp_path / f"reached-{time.monotonic_ns()}"
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            for kind, at in arms:
                _arm(kind, at, marker)
            action()
        except BaseException:
            code = 3
        os._exit(code)
    try:
        if delay is not None:
            time.sleep(delay)
        else:
            deadline = time.monotonic() + 60
            while not marker.exists():
                done, status = os.waitpid(pid, os.WNOHANG)
                assert not done, f"child exited ({status}) before reaching {arms or marker}"
                assert time.monotonic() < deadline, f"child never reached {arms or marker}"
                time.sleep(0.01)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


class _SlowModel:
    """Stands in for a model: ``save`` writes half a file, then blocks (to be killed)."""

    def __init__(self, marker_dir):
        self.marker = marker_dir / "model-reached"

    def save(self, path, overwrite=False, save_anndata=False):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "model.pt"), "wb") as handle:
            handle.write(b"partial")
        _block(self.marker)


def _check_readable(store, tissue, old_hashes, allowed: dict) -> set[str]:
    """Store reads cleanly, old elements are intact, each run equals an allowed version."""
    sdata = read_store(store)
    assert_elements_equal(sdata, tissue)
    now = file_hashes(store)
    for key, digest in old_hashes.items():
        assert now.get(key) == digest, f"{key} changed"
    runs = set(list_runs(sdata))
    for run in runs:
        got = read_run(sdata, run)
        assert any(got == ok for ok in allowed[run]), f"run {run} is neither version"
    return runs


def _check_recovered(store, tmp_path) -> None:
    assert not (store / STAGING).exists()
    assert consolidated(store) == zarr_reconsolidated(store, tmp_path)


def _run_hashes(store):
    return {k: v for k, v in file_hashes(store).items() if "topomics" not in k}


# ---------------------------------------------------------------------- new run
NEW_RUN_KILLS = [
    ("mid-table", [("zarr_write", 12)], False),
    ("mid-model", [], False),
    ("intent", [("checkpoint", "intent")], False),
    ("model-in-place", [("checkpoint", "model")], False),
    ("table-in-place", [("checkpoint", "table")], True),
    ("metadata-written", [("checkpoint", "metadata")], True),
]


@pytest.mark.parametrize(("step", "arms", "committed"), NEW_RUN_KILLS,
                         ids=[k[0] for k in NEW_RUN_KILLS])
def test_killed_new_write(store, tissue, results, trained, tmp_path, step, arms, committed):
    old = file_hashes(store)
    model = _SlowModel(tmp_path) if step == "mid-model" else trained[0]
    marker = model.marker if step == "mid-model" else None
    _killed(tmp_path, lambda: write_run(store, results, model=model), *arms, marker=marker)
    assert (store / STAGING).exists()  # the kill left its staging folder
    _check_readable(store, tissue, old, {RUN: [results]})

    if step == "table-in-place":  # next write (not an explicit recovery) finds the debris
        with pytest.raises(TopomicsInputError, match="already exists"):
            write_run(store, results)
    else:
        assert recover_store(store) == 1
    _check_recovered(store, tmp_path)
    assert list_runs(store) == ([RUN] if committed else [])
    model_dir = store / "topomics_models" / RUN
    assert model_dir.exists() == committed
    if committed:
        assert read_run(store, RUN) == results
    else:  # the store is exactly as before
        assert file_hashes(store) == old


@pytest.mark.parametrize("delay", [0.7])
def test_killed_after_a_delay(store, tissue, results, trained, tmp_path, delay):
    old = file_hashes(store)
    _killed(tmp_path, lambda: write_run(store, results, model=trained[0]), delay=delay)
    _check_readable(store, tissue, old, {RUN: [results]})
    write_run(store, results, model=trained[0], overwrite=True)  # recovers, then writes
    _check_recovered(store, tmp_path)
    assert read_run(store, RUN) == results


# ---------------------------------------------------------------------- overwrite
OVERWRITE_KILLS = [
    ("model-swapped", [("checkpoint", "model")], False),
    ("table-swapped", [("checkpoint", "table")], True),
    ("table-parked-no-swap", [("no_exchange", ("parked", 2))], False),
]


@pytest.mark.parametrize(("step", "arms", "committed"), OVERWRITE_KILLS,
                         ids=[k[0] for k in OVERWRITE_KILLS])
def test_killed_overwrite_keeps_a_complete_run(
    store_with_run, tissue, results, trained, tmp_path, step, arms, committed
):
    store = store_with_run
    old_model = (store / "topomics_models" / RUN / "model.pt").read_bytes()
    old = _run_hashes(store)
    new = other_results(results)
    _killed(tmp_path, lambda: write_run(store, new, model=trained[0], overwrite=True), *arms)
    runs = _check_readable(store, tissue, old, {RUN: [results, new]})
    if step != "table-parked-no-swap":
        assert runs == {RUN}  # the run never disappears when directories can be swapped
    assert recover_store(store) == 1
    _check_recovered(store, tmp_path)
    assert read_run(store, RUN) == (new if committed else results)
    if not committed:  # the old model is back too
        assert (store / "topomics_models" / RUN / "model.pt").read_bytes() == old_model


def test_overwrite_without_swap_completes(store_with_run, results, trained, tmp_path,
                                          monkeypatch):
    store = store_with_run
    monkeypatch.setattr(_store_journal, "exchange", lambda a, b: False)
    new = other_results(results)
    write_run(store, new, model=trained[0], overwrite=True)
    assert read_run(store, RUN) == new
    _check_recovered(store, tmp_path)


# ---------------------------------------------------------------------- delete
@pytest.mark.parametrize("step", ["metadata", "table"])
def test_killed_delete_completes_on_recovery(
    store_template, store_with_run, tissue, results, tmp_path, step
):
    store = store_with_run
    pristine = file_hashes(store_template, skip_root_meta=False)
    old = _run_hashes(store)
    _killed(tmp_path, lambda: delete_run(store, RUN), ("checkpoint", step))
    _check_readable(store, tissue, old, {RUN: [results]})
    assert recover_store(store) == 1
    assert list_runs(store) == []
    assert file_hashes(store, skip_root_meta=False) == pristine


# ---------------------------------------------------------------------- failures, locks
def test_failure_while_staging_leaves_store_unchanged(store, results):
    class Broken:
        def save(self, *args, **kwargs):
            raise RuntimeError("disk full")

    before = file_hashes(store, skip_root_meta=False)
    with pytest.raises(RuntimeError, match="disk full"):
        write_run(store, results, model=Broken())
    assert file_hashes(store, skip_root_meta=False) == before
    assert not (store / STAGING).exists()


def test_locked_store_is_refused(store, results, monkeypatch):
    monkeypatch.setattr(_store, "LOCK_TIMEOUT_S", 0.2)
    before = file_hashes(store, skip_root_meta=False)
    with directory_lock(store):
        with pytest.raises(TopomicsInputError, match="being modified by another process"):
            write_run(store, results)
    assert file_hashes(store, skip_root_meta=False) == before


def _chmod_works(tmp_path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (probe / "x").write_text("x")
        return False  # root (or similar) ignores the permission bits
    except PermissionError:
        return True
    finally:
        probe.chmod(stat.S_IRWXU)


def test_read_only_store(store, results, tmp_path):
    if not _chmod_works(tmp_path):
        pytest.skip("permission bits are not enforced for this user (root)")
    before = file_hashes(store, skip_root_meta=False)
    modes = {}
    for path in [store, *store.rglob("*")]:
        modes[path] = path.stat().st_mode
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        with pytest.raises(TopomicsInputError, match="not writable"):
            write_run(store, results)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert file_hashes(store, skip_root_meta=False) == before


def test_unwritable_store_is_refused_before_starting(store, results, monkeypatch):
    """The permission check itself (also where chmod is not enforced, e.g. as root)."""
    before = file_hashes(store, skip_root_meta=False)
    real_access = os.access
    monkeypatch.setattr(
        _store.os, "access",
        lambda p, mode: False if mode & os.W_OK and str(p) == str(store) else real_access(p, mode),
    )
    with pytest.raises(TopomicsInputError, match=r"not writable.*check its permissions"):
        write_run(store, dataclasses.replace(results))
    assert file_hashes(store, skip_root_meta=False) == before
