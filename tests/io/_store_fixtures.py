"""Fixtures of the results/store tests: a tiny SpatialData store, a tiny trained model.

Imported by ``test_io_results.py``, ``test_io_store.py`` and ``test_io_store_safety.py``
(pytest puts ``tests/io`` on ``sys.path``). The store holds an image, a labels element
``cells`` with 30 cells, shapes, points and a counts table annotating ``cells``; the model
(2 modalities, 3 topics, 2 epochs) is trained on that table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import warnings
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)
for _name in ("ome_zarr", "spatialdata", "lightning", "lightning.pytorch", "scvi"):
    logging.getLogger(_name).setLevel(logging.ERROR)

N_ROWS, N_COLS, SIDE = 5, 6, 4
N_CELLS = N_ROWS * N_COLS
N_GENES, N_PROTS = 10, 4
RUN = "run1"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def label_image() -> np.ndarray:
    """A grid of 4 x 4 cells with ids 1..30 (shuffled), 0 = background."""
    ids = np.random.default_rng(3).permutation(N_CELLS) + 1
    labels = np.zeros((N_ROWS * (SIDE + 1), N_COLS * (SIDE + 1)), dtype=np.int32)
    for k, cell in enumerate(ids):
        r, c = divmod(k, N_COLS)
        labels[r * (SIDE + 1) : r * (SIDE + 1) + SIDE, c * (SIDE + 1) : c * (SIDE + 1) + SIDE] = (
            cell
        )
    return labels


def centroids(labels: np.ndarray) -> pd.DataFrame:
    """``x, y`` centroid of every label id, indexed by id."""
    ys, xs = np.nonzero(labels)
    frame = pd.DataFrame({"id": labels[ys, xs], "x": xs.astype(float), "y": ys.astype(float)})
    return frame.groupby("id")[["x", "y"]].mean()


def tiny_sdata(with_table: bool = True):
    """Image, labels ``cells``, shapes, points and (optionally) a counts table."""
    import geopandas as gpd
    from shapely.geometry import Point
    from spatialdata import SpatialData
    from spatialdata.models import (
        Image2DModel,
        Labels2DModel,
        PointsModel,
        ShapesModel,
        TableModel,
    )

    rng = np.random.default_rng(0)
    labels = label_image()
    h, w = labels.shape
    image = rng.integers(0, 255, size=(2, h, w)).astype(np.uint8)
    circles = gpd.GeoDataFrame(
        {"radius": np.full(4, 1.5)}, geometry=[Point(2 + 5 * i, 3) for i in range(4)]
    )
    points = pd.DataFrame(
        {
            "x": rng.uniform(0, w, 12),
            "y": rng.uniform(0, h, 12),
            "gene": pd.Categorical(rng.choice(["a", "b"], 12)),
        }
    )
    elements = {
        "images": {"tissue": Image2DModel.parse(image, dims=("c", "y", "x"))},
        "labels": {"cells": Labels2DModel.parse(labels, dims=("y", "x"))},
        "shapes": {"spots": ShapesModel.parse(circles)},
        "points": {"transcripts": PointsModel.parse(points)},
    }
    if with_table:
        ids = np.sort(np.unique(labels[labels > 0]))
        X = rng.poisson(3.0, size=(N_CELLS, N_GENES + N_PROTS)).astype(np.float32)
        var = pd.DataFrame(
            {"feature_types": ["Gene Expression"] * N_GENES + ["Antibody Capture"] * N_PROTS},
            index=[f"gene{i}" for i in range(N_GENES)] + [f"prot{i}" for i in range(N_PROTS)],
        )
        obs = pd.DataFrame(
            {"region": pd.Categorical(["cells"] * N_CELLS), "cell_id": ids},
            index=[f"cell{i}" for i in ids],
        )
        table = ad.AnnData(X=X, obs=obs, var=var)
        elements["tables"] = {
            "table": TableModel.parse(
                table, region="cells", region_key="region", instance_key="cell_id"
            )
        }
    return SpatialData(**elements)


def write_store(sdata, path: Path, **kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*autosharding.*")
        sdata.write(path, **kwargs)
    return path


def read_store(path: Path):
    """``spatialdata.read_zarr``, failing on any warning it emits."""
    from spatialdata import read_zarr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_zarr(path)


def file_hashes(root: Path, *, skip_root_meta: bool = True) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (root ``zarr.json``/``.zmetadata`` skipped)."""
    out = {}
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root).as_posix()
        if file.is_file() and not (skip_root_meta and rel in ("zarr.json", ".zmetadata")):
            out[rel] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def consolidated(root: Path) -> dict | None:
    """The consolidated ``key -> metadata`` map of a v3 or v2 store."""
    if (root / "zarr.json").is_file():
        cm = json.loads((root / "zarr.json").read_text()).get("consolidated_metadata")
        return None if cm is None else cm["metadata"]
    if (root / ".zmetadata").is_file():
        return json.loads((root / ".zmetadata").read_text())["metadata"]
    return None


def zarr_reconsolidated(root: Path, scratch: Path) -> dict:
    """What ``zarr.consolidate_metadata`` writes for a copy of the store (reference)."""
    import zarr

    copy = scratch / "reconsolidated.zarr"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(copy))
    out = consolidated(copy)
    shutil.rmtree(copy)
    return out


def assert_elements_equal(got, expected) -> None:
    """The non-run elements of two SpatialData objects hold the same data."""
    for name, image in expected.images.items():
        np.testing.assert_array_equal(got.images[name].values, image.values)
    for name, labels in expected.labels.items():
        np.testing.assert_array_equal(got.labels[name].values, labels.values)
    for name, shapes in expected.shapes.items():
        assert got.shapes[name].geometry.equals(shapes.geometry)
        pd.testing.assert_frame_equal(
            pd.DataFrame(got.shapes[name].drop(columns="geometry")),
            pd.DataFrame(shapes.drop(columns="geometry")),
        )
    for name, points in expected.points.items():
        pd.testing.assert_frame_equal(
            got.points[name].compute().reset_index(drop=True),
            points.compute().reset_index(drop=True),
        )
    for name, table in expected.tables.items():
        if name.startswith("topomics_"):
            continue
        np.testing.assert_array_equal(
            np.asarray(
                got.tables[name].X.todense()
                if hasattr(got.tables[name].X, "todense")
                else got.tables[name].X
            ),
            np.asarray(table.X.todense() if hasattr(table.X, "todense") else table.X),
        )
        pd.testing.assert_frame_equal(got.tables[name].obs, table.obs)


def training_data(table: ad.AnnData) -> md.MuData:
    """The table split into an ``rna`` and a ``protein`` modality (rows aligned)."""
    rna = table[:, table.var["feature_types"] == "Gene Expression"].copy()
    prot = table[:, table.var["feature_types"] == "Antibody Capture"].copy()
    for mod in (rna, prot):
        mod.obs = pd.DataFrame(index=table.obs_names.copy())
        mod.X = np.asarray(mod.X, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.MuData({"rna": rna, "protein": prot})


def train_model(mdata: md.MuData, seed: int = 0):
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MultimodalAmortizedLDA.from_data(mdata, n_topics=3, n_hidden=8)
        model.train(max_epochs=2, batch_size=15, enable_progress_bar=False)
    return model


def results_for(model, sdata, run_name: str = RUN, n_top: int = 5, source=None):
    from napari_topomics.io._results import TopicResults

    table = sdata.tables["table"]
    ids = table.obs["cell_id"].to_numpy()
    xy = centroids(sdata.labels["cells"].values).loc[ids]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TopicResults.from_model(
            model,
            run_name=run_name,
            n_top=n_top,
            region="cells",
            instance_key="cell_id",
            instance_ids=ids,
            coordinates=xy.to_numpy(),
            source=source,
            table="table",
            seed=0,
        )


def other_results(results, run_name: str | None = None):
    """A different, valid run: rows of proportions and weights reversed per cell."""
    props = results.proportions.iloc[:, ::-1].to_numpy()
    weights = results.modality_weights.iloc[:, ::-1].to_numpy()
    return dataclasses.replace(
        results,
        run_name=run_name or results.run_name,
        proportions=pd.DataFrame(
            props, index=results.proportions.index, columns=results.proportions.columns
        ),
        modality_weights=pd.DataFrame(
            weights, index=results.modality_weights.index, columns=results.modality_weights.columns
        ),
    )


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tissue():
    """The in-memory tiny SpatialData (never written to; compare against it)."""
    return tiny_sdata()


@pytest.fixture(scope="session")
def store_template(tmp_path_factory, tissue) -> Path:
    return write_store(tissue, tmp_path_factory.mktemp("template") / "tissue.zarr")


@pytest.fixture
def store(tmp_path, store_template) -> Path:
    """A fresh on-disk copy of the tiny store."""
    path = tmp_path / "tissue.zarr"
    shutil.copytree(store_template, path)
    return path


@pytest.fixture(scope="session")
def trained(tissue):
    """``(model, mdata)`` trained on the tiny store's table."""
    mdata = training_data(tissue.tables["table"])
    return train_model(mdata), mdata


@pytest.fixture(scope="session")
def results(trained, tissue):
    return results_for(trained[0], tissue)


@pytest.fixture(scope="session")
def run_template(tmp_path_factory, store_template, results, trained) -> Path:
    """The tiny store with run ``run1`` (and its model) already written."""
    from napari_topomics.io._store import write_run

    path = tmp_path_factory.mktemp("with_run") / "tissue.zarr"
    shutil.copytree(store_template, path)
    write_run(path, results, model=trained[0])
    return path


@pytest.fixture
def store_with_run(tmp_path, run_template) -> Path:
    """A fresh copy of the tiny store holding run ``run1`` with its model."""
    path = tmp_path / "tissue.zarr"
    shutil.copytree(run_template, path)
    return path
