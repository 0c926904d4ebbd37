"""Small on-disk stores for the CLI tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, keyed by relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def demo_store_template(tmp_path_factory) -> Path:
    """A 300-cell demo tissue written once as a SpatialData store."""
    from napari_topomics.datasets import demo

    path = tmp_path_factory.mktemp("template") / "demo.zarr"
    demo(seed=1, n_cells=300).write(path)
    return path


@pytest.fixture
def demo_store(demo_store_template, tmp_path) -> Path:
    """A fresh copy of the small demo store for one test."""
    import shutil

    target = tmp_path / "demo.zarr"
    shutil.copytree(demo_store_template, target)
    return target


@pytest.fixture
def visium_folder() -> Path:
    path = SHARED / "visium_mouse_brain_seurat"
    if not path.is_dir():
        pytest.skip("shared Visium data not available")
    return path


def error_lines(stderr: str) -> list[str]:
    """The CLI's error lines in ``stderr`` (status messages and warnings are other lines)."""
    return [line for line in stderr.splitlines() if ": error: " in line]
