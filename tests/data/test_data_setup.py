"""Preparing the registered AnnData from every input type (spec §4, §5.10, §8)."""

import copy
import logging
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_topomics.data import (
    block_slices,
    block_stats,
    detect_input_type,
    infer_likelihood,
    prepare_adata_dict,
    prepare_anndata,
    prepare_data,
    prepare_mudata,
    prepare_spatialdata,
    strip_setup_state,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*without encoding metadata"),
]

DATA = Path(__file__).parents[2].parent / "shared" / "data"
N = 12


def _rna(rng, cells):
    counts = rng.poisson(2.0, size=(len(cells), 5)).astype(np.float32)
    a = ad.AnnData(
        X=sp.csr_matrix(np.log1p(counts)),
        obs=pd.DataFrame(
            {
                "batch": pd.Categorical(rng.choice(["b1", "b2"], len(cells))),
                "pct_mt": rng.random(len(cells)),
            },
            index=cells,
        ),
        var=pd.DataFrame(index=["CD4", "CD8A", "LYZ", "MS4A1", "NKG7"]),
    )
    a.layers["counts"] = sp.csr_matrix(counts)
    a.obsm["spatial"] = rng.random((len(cells), 2))
    a.obsm["X_extra"] = rng.random((len(cells), 3)).astype(np.float32)
    return a


def _adt(rng, cells):
    return ad.AnnData(
        X=rng.poisson(5.0, size=(len(cells), 3)).astype(np.float32),
        obs=pd.DataFrame({"sample": ["s" + c[-1] for c in cells]}, index=cells),
        var=pd.DataFrame(index=["CD4", "CD3", "CD19"]),
    )


@pytest.fixture
def mods():
    rng = np.random.default_rng(0)
    cells = [f"cell{i}" for i in range(N)]
    return _rna(rng, cells), _adt(rng, cells)


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _expected(rna, adt, cells, rna_layer="counts"):
    """Reference concatenation, built cell by cell from the names."""
    r = _dense(rna.layers[rna_layer] if rna_layer else rna.X)
    a = _dense(adt.X)
    out = np.zeros((len(cells), rna.n_vars + adt.n_vars), dtype=np.float32)
    for i, c in enumerate(cells):
        if c in rna.obs_names:
            out[i, : rna.n_vars] = r[rna.obs_names.get_loc(c)]
        if c in adt.obs_names:
            out[i, rna.n_vars :] = a[adt.obs_names.get_loc(c)]
    return out


def _snapshot(a):
    return {
        "X": copy.deepcopy(a.X),
        "layers": {k: copy.deepcopy(v) for k, v in a.layers.items()},
        "obsm": {k: copy.deepcopy(v) for k, v in a.obsm.items()},
        "obsp": {k: copy.deepcopy(v) for k, v in a.obsp.items()},
        "obs_cols": list(a.obs.columns),
    }


def _assert_unchanged(a, snap, new_obs_cols=()):
    np.testing.assert_array_equal(_dense(a.X), _dense(snap["X"]))
    assert list(a.layers) == list(snap["layers"])
    for k, v in snap["layers"].items():
        np.testing.assert_array_equal(_dense(a.layers[k]), _dense(v))
    assert list(a.obsm) == list(snap["obsm"])
    for k, v in snap["obsm"].items():
        np.testing.assert_array_equal(np.asarray(a.obsm[k]), np.asarray(v))
    assert list(a.obsp) == list(snap["obsp"])
    for k, v in snap["obsp"].items():
        np.testing.assert_array_equal(_dense(a.obsp[k]), _dense(v))
    assert list(a.obs.columns) == snap["obs_cols"] + [
        c for c in new_obs_cols if c not in snap["obs_cols"]
    ]


# ----------------------------------------------------------------------------- AnnData


def test_anndata_registered_in_place(mods):
    rna, _ = mods
    snap = _snapshot(rna)
    prep = prepare_anndata(rna, modality="RNA", layer="counts")
    assert prep.adata is rna and prep.layer == "counts"
    assert prep.modality_names == ["RNA"] and prep.feature_counts == [5]
    assert prep.layer_dict == {"RNA": "counts"}
    np.testing.assert_array_equal(rna.obs["_indices"], np.arange(N))
    assert rna.obs["_indices"].dtype == np.int64
    assert rna.uns["_modality_setup"] == {
        "modality_names": ["RNA"],
        "feature_counts": [5],
        "layer_dict": {"RNA": "counts"},
    }
    assert "_spatial_graph" not in rna.uns
    _assert_unchanged(rna, snap, ["_indices"])


def test_anndata_errors_name_the_item(mods):
    rna, _ = mods
    with pytest.raises(KeyError, match="'raw_counts'") as err:
        prepare_anndata(rna, layer="raw_counts")
    assert "counts" in str(err.value)
    with pytest.raises(KeyError, match="'donor'"):
        prepare_anndata(rna, categorical_covariate_keys=["batch", "donor"])
    with pytest.raises(KeyError, match="'age'"):
        prepare_anndata(rna, continuous_covariate_keys=["age"])
    with pytest.raises(KeyError, match="'X_missing'"):
        prepare_anndata(rna, encoder_extra_obsm_key="X_missing")
    with pytest.raises(ValueError, match="2"):
        prepare_anndata(rna, modality=["rna", "adt"])
    with pytest.raises(ValueError, match="view"):
        prepare_anndata(rna[:5])
    # nothing was written by the failed calls
    assert "_indices" not in rna.obs and "_modality_setup" not in rna.uns


def test_anndata_graph_from_obsp(mods):
    rna, _ = mods
    A = sp.random(N, N, density=0.3, format="csr", random_state=0)
    rna.obsp["my_graph"] = A
    snap = _snapshot(rna)
    prepare_anndata(rna, spatial_key="my_graph")
    g = rna.uns["_spatial_graph"]
    assert g["key"] == "my_graph" and g["adjacency"] is not rna.obsp["my_graph"]
    np.testing.assert_array_equal(g["adjacency"].toarray(), A.toarray())
    _assert_unchanged(rna, snap, ["_indices"])
    # a later setup without a spatial key drops the stale graph
    prepare_anndata(rna)
    assert "_spatial_graph" not in rna.uns


def test_anndata_graph_from_coordinates(mods, caplog):
    rna, _ = mods
    snap = _snapshot(rna)
    with caplog.at_level(logging.INFO, logger="napari_topomics"):
        prepare_anndata(rna, spatial_key="spatial")
    assert "6-nearest-neighbour" in caplog.text and "obsm['spatial']" in caplog.text
    assert "uns" in caplog.text and "not modified" in caplog.text
    g = rna.uns["_spatial_graph"]
    assert g["key"] == "spatial_connectivities" and g["adjacency"].shape == (N, N)
    assert (g["adjacency"] != g["adjacency"].T).nnz == 0
    assert list(rna.obsp) == []  # never on the user's object
    _assert_unchanged(rna, snap, ["_indices"])
    # squidpy's obsp key, absent from obsp: falls back to obsm["spatial"]
    prepare_anndata(rna, spatial_key="spatial_connectivities")
    assert rna.uns["_spatial_graph"]["adjacency"].nnz == g["adjacency"].nnz


def test_anndata_missing_graph_lists_obsp_keys(mods):
    rna, _ = mods
    del rna.obsm["spatial"]
    rna.obsp["connectivities"] = sp.identity(N, format="csr")
    with pytest.raises(KeyError, match="'neighbors'") as err:
        prepare_anndata(rna, spatial_key="neighbors")
    assert "connectivities" in str(err.value)


def test_anndata_dict_layer_and_key(mods):
    rna, _ = mods
    prep = prepare_anndata(rna, "rna", layer={"rna": "counts"}, spatial_key={"RNA": "spatial"})
    assert prep.layer == "counts" and "_spatial_graph" in rna.uns
    with pytest.raises(ValueError, match="'adt'"):
        prepare_anndata(rna, "rna", layer={"adt": "counts"})


# ----------------------------------------------------------------------------- MuData


def test_mudata_aligns_shuffled_and_partial_modalities(mods):
    rna, adt = mods
    adt_part = adt[[f"cell{i}" for i in [9, 2, 7, 0, 5, 11, 3]]].copy()  # shuffled subset
    mdata = md.MuData({"rna": rna, "adt": adt_part})
    snaps = {k: _snapshot(m) for k, m in mdata.mod.items()}
    prep = prepare_mudata(mdata, layers={"rna": "counts"})
    X = prep.adata.X
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32
    cells = list(mdata.obs_names)
    np.testing.assert_array_equal(X.toarray(), _expected(rna, adt_part, cells))
    assert list(prep.adata.obs_names) == cells
    # cells without ADT get an all-zero ADT block
    missing = [i for i, c in enumerate(cells) if c not in adt_part.obs_names]
    assert len(missing) == 5 and not X[missing][:, 5:].toarray().any()
    assert prep.modality_names == ["rna", "adt"] and prep.feature_counts == [5, 3]
    assert prep.layer_dict == {"rna": "counts", "adt": None}
    for k, m in mdata.mod.items():
        _assert_unchanged(m, snaps[k])


def test_mudata_metadata_and_feature_names(mods):
    rna, adt = mods
    mdata = md.MuData({"rna": rna, "adt": adt})
    prep = prepare_mudata(mdata, layers={"rna": "counts"})
    a = prep.adata
    assert a.var_names.is_unique
    assert list(a.var_names) == [
        "rna:CD4",
        "CD8A",
        "LYZ",
        "MS4A1",
        "NKG7",
        "adt:CD4",
        "CD3",
        "CD19",
    ]
    assert list(a.var["modality"]) == ["rna"] * 5 + ["adt"] * 3
    assert list(a.var["feature_name"])[:1] == ["CD4"]
    expected = {
        "modality_order": ["rna", "adt"],
        "feat_counts": [5, 3],
        "layer_dict": {"rna": "counts", "adt": None},
        "setup_method": "separate_modalities",
    }
    assert mdata.uns["_multimodal_setup"] == expected
    assert a.uns["_multimodal_setup"] == expected
    assert a.uns["_modality_setup"] == {
        "modality_names": ["rna", "adt"],
        "feature_counts": [5, 3],
        "layer_dict": {"rna": "counts", "adt": None},
    }
    np.testing.assert_array_equal(a.obs["_indices"], np.arange(N))
    assert "_indices" not in mdata.obs and "_indices" not in mdata["rna"].obs


def test_mudata_subset_synonyms_and_unknown(mods):
    rna, adt = mods
    mdata = md.MuData({"RNA": rna, "ADT": adt})
    prep = prepare_mudata(mdata, modalities=["protein", "RNA"])
    assert prep.modality_names == ["ADT", "RNA"] and prep.feature_counts == [3, 5]
    np.testing.assert_array_equal(_dense(prep.adata.X)[:, :3], adt.X)
    with pytest.raises(
        ValueError,
        match=r"Modality 'atac' not found in MuData\. Available: "
        r"\['RNA', 'ADT'\]",
    ):
        prepare_mudata(mdata, modalities=["atac"])


def test_mudata_dense_blocks_stay_dense(mods):
    _, adt = mods
    adt2 = adt.copy()
    adt2.var_names = ["a", "b", "c"]
    prep = prepare_mudata(md.MuData({"adt": adt, "adt2": adt2}))
    assert isinstance(prep.adata.X, np.ndarray) and prep.adata.X.dtype == np.float32


def test_mudata_duplicated_obs_names_raise(mods):
    rna, adt = mods
    adt_dup = adt.copy()
    adt_dup.obs_names = ["cell0"] * 2 + list(adt.obs_names[2:])
    with pytest.raises(ValueError, match="'adt'.*duplicated"):
        prepare_adata_dict({"rna": rna, "adt": adt_dup})


def test_mudata_covariates_lookup(mods):
    rna, adt = mods
    adt_part = adt[adt.obs_names[:8]].copy()
    mdata = md.MuData({"rna": rna, "adt": adt_part})
    mdata.obs["global_cov"] = np.arange(N, dtype=float)
    prep = prepare_mudata(
        mdata,
        categorical_covariate_keys=["batch"],
        continuous_covariate_keys=["pct_mt", "global_cov"],
    )
    obs = prep.adata.obs
    np.testing.assert_array_equal(obs["batch"].astype(str), rna.obs["batch"].astype(str))
    np.testing.assert_allclose(obs["pct_mt"], rna.obs["pct_mt"])
    np.testing.assert_allclose(obs["global_cov"], np.arange(N))
    assert "batch" not in mdata.obs  # the MuData is not modified
    with pytest.raises(KeyError, match="'donor'"):
        prepare_mudata(mdata, categorical_covariate_keys=["donor"])
    # "sample" exists only in the partial modality: 4 cells would have no value
    with pytest.raises(ValueError, match="'sample'.*4"):
        prepare_mudata(mdata, categorical_covariate_keys=["sample"])


def test_mudata_obsm_copied_and_encoder_extra(mods):
    rna, adt = mods
    mdata = md.MuData({"rna": rna, "adt": adt})
    mdata.obsm["X_glob"] = np.ones((N, 2))
    prep = prepare_mudata(mdata, encoder_extra_obsm_key="X_extra")
    a = prep.adata
    np.testing.assert_array_equal(a.obsm["X_glob"], 1.0)
    assert a.obsm["X_glob"] is not mdata.obsm["X_glob"]
    np.testing.assert_allclose(a.obsm["X_extra"], rna.obsm["X_extra"])
    with pytest.raises(KeyError, match="'X_nope'"):
        prepare_mudata(mdata, encoder_extra_obsm_key="X_nope")


def _named_edges(A, names):
    coo = sp.coo_matrix(A)
    return {(names[r], names[c]) for r, c in zip(coo.row, coo.col, strict=True)}


def test_mudata_modality_graph_reindexed(mods):
    rna, adt = mods
    order = [f"cell{i}" for i in [3, 1, 0, 2, 4, 5, 6, 7, 8, 9, 10, 11]]
    adt_shuffled = adt[order].copy()
    rng = np.random.default_rng(3)
    A = sp.random(N, N, density=0.25, format="csr", random_state=rng)
    adt_shuffled.obsp["spatial_connectivities"] = A
    snap = _snapshot(adt_shuffled)
    mdata = md.MuData({"rna": rna, "adt": adt_shuffled})
    prep = prepare_mudata(mdata, spatial_keys={"adt": "spatial_connectivities"})
    g = prep.adata.uns["_spatial_graph"]
    assert g["key"] == "spatial_connectivities"
    assert _named_edges(g["adjacency"], list(prep.adata.obs_names)) == _named_edges(A, order)
    assert "spatial_connectivities" in prep.adata.obsp
    _assert_unchanged(mdata["adt"], snap)


def test_mudata_per_modality_graphs(mods):
    rna, adt = mods
    rna.obsp["g1"] = sp.random(N, N, density=0.2, format="csr", random_state=1)
    adt.obsp["g2"] = sp.random(N, N, density=0.2, format="csr", random_state=2)
    mdata = md.MuData({"rna": rna, "adt": adt})
    prep = prepare_mudata(mdata, spatial_keys={"rna": "g1", "adt": "g2"})
    gs = prep.adata.uns["_spatial_graphs"]
    assert set(gs) == {"rna", "adt"} and gs["rna"]["key"] == "g1" and gs["adt"]["key"] == "g2"
    assert "_spatial_graph" not in prep.adata.uns
    # the same graph for both: stored once
    adt.obsp["g1"] = rna.obsp["g1"].copy()
    prep = prepare_mudata(md.MuData({"rna": rna, "adt": adt}), spatial_keys="g1")
    assert prep.adata.uns["_spatial_graph"]["key"] == "g1"


def test_mudata_global_obsp_and_coordinates(mods):
    rna, adt = mods
    del rna.obsm["spatial"]
    mdata = md.MuData({"rna": rna, "adt": adt})
    with pytest.raises(KeyError, match="'spatial_connectivities'"):
        prepare_mudata(mdata, spatial_keys="spatial_connectivities")
    mdata.obsm["spatial"] = np.random.default_rng(0).random((N, 2))
    snap_obsp = list(mdata.obsp)
    prep = prepare_mudata(mdata, spatial_keys="spatial")
    a = prep.adata
    assert {"spatial_connectivities", "spatial_distances"} <= set(a.obsp)
    assert list(mdata.obsp) == snap_obsp
    assert a.uns["_spatial_graph"]["key"] == "spatial_connectivities"
    mdata.obsp["knn"] = sp.identity(N, format="csr")
    prep = prepare_mudata(mdata, spatial_keys="knn")
    assert prep.adata.uns["_spatial_graph"]["key"] == "knn"


def test_mudata_missing_layer_names_it(mods):
    rna, adt = mods
    mdata = md.MuData({"rna": rna, "adt": adt})
    with pytest.raises(KeyError, match="'raw'.*'adt'"):
        prepare_mudata(mdata, layers={"adt": "raw"})
    with pytest.raises(ValueError, match="'atac'"):
        prepare_mudata(mdata, layers={"atac": "counts"})


# ----------------------------------------------------------------------------- dict


def test_dict_path_equals_mudata_path(mods):
    rna, adt = mods
    snaps = [_snapshot(rna), _snapshot(adt)]
    p_dict = prepare_adata_dict({"rna": rna, "adt": adt}, layers={"rna": "counts"})
    p_mu = prepare_mudata(md.MuData({"rna": rna, "adt": adt}), layers={"rna": "counts"})
    np.testing.assert_array_equal(_dense(p_dict.adata.X), _dense(p_mu.adata.X))
    assert list(p_dict.adata.var_names) == list(p_mu.adata.var_names)
    assert p_dict.adata.uns["_adata_dict_setup"] == p_dict.adata.uns["_modality_setup"]
    _assert_unchanged(rna, snaps[0])
    _assert_unchanged(adt, snaps[1])
    assert "_adata_dict_setup" not in rna.uns


def test_dict_path_union_of_cells_and_errors(mods):
    rna, adt = mods
    rna_part, adt_part = rna[:8].copy(), adt[4:][::-1].copy()
    prep = prepare_adata_dict({"rna": rna_part, "adt": adt_part}, modalities=["rna", "adt"])
    cells = list(prep.adata.obs_names)
    assert cells == list(rna_part.obs_names) + [f"cell{i}" for i in [11, 10, 9, 8]]
    np.testing.assert_array_equal(
        _dense(prep.adata.X), _expected(rna_part, adt_part, cells, rna_layer=None)
    )
    with pytest.raises(TypeError, match="'adt'"):
        prepare_adata_dict({"rna": rna, "adt": adt.X})


# ----------------------------------------------------------------------------- SpatialData


@pytest.fixture
def sdata_of(mods):
    sd = pytest.importorskip("spatialdata")

    def make(table):
        return sd.SpatialData(tables={"table": table})

    return make


def test_spatialdata_path(mods, sdata_of):
    rna, _ = mods
    table = rna.copy()
    sdata = sdata_of(table)
    table = sdata.tables["table"]
    snap = _snapshot(table)
    prep = prepare_spatialdata(sdata, layers="counts", spatial_keys="spatial")
    assert prep.adata is table and prep.layer == "counts"
    assert table.uns["_spatialdata_setup"] == {
        "modality_names": ["rna"],
        "feature_counts": [5],
        "layer_dict": {"rna": "counts"},
        "table_key": "table",
    }
    assert table.uns["_spatial_graph"]["key"] == "spatial_connectivities"
    _assert_unchanged(table, snap, ["_indices"])
    prep2 = prepare_spatialdata(
        sdata, modalities=["RNA"], layers={"RNA": "counts"}, spatial_keys={"RNA": "spatial"}
    )
    assert prep2.modality_names == ["RNA"] and prep2.layer == "counts"
    assert "_spatial_graph" in table.uns and "_spatial_graphs" not in table.uns
    with pytest.raises(
        KeyError,
        match=r"Table 'cells' not found in SpatialData\. "
        r"Available tables: \['table'\]",
    ):
        prepare_spatialdata(sdata, table_key="cells")


def test_every_path_gives_the_same_matrix(mods, sdata_of):
    rna, _ = mods
    ref = _dense(rna.layers["counts"])
    a1 = rna.copy()
    p_old = prepare_anndata(a1, layer="counts")
    X_old = _dense(p_old.adata.layers[p_old.layer])
    p_new = prepare_data(rna.copy(), modalities=["rna"], layers={"rna": "counts"})
    X_new = _dense(p_new.adata.layers[p_new.layer])
    p_mu = prepare_data(md.MuData({"rna": rna.copy()}), layers="counts")
    p_dict = prepare_data({"rna": rna.copy()}, layers={"rna": "counts"})
    p_sd = prepare_data(sdata_of(rna.copy()), layers="counts")
    X_sd = _dense(p_sd.adata.layers[p_sd.layer])
    for X in (X_old, X_new, _dense(p_mu.adata.X), _dense(p_dict.adata.X), X_sd):
        np.testing.assert_array_equal(X, ref)
    for p in (p_old, p_new, p_mu, p_dict, p_sd):
        assert p.modality_names == ["rna"] and p.feature_counts == [5]


# ----------------------------------------------------------------------------- misc


def test_detect_input_type(mods, sdata_of):
    rna, adt = mods
    assert detect_input_type(rna) == "anndata"
    assert detect_input_type(md.MuData({"rna": rna})) == "mudata"
    assert detect_input_type({"rna": rna}) == "dict"
    assert detect_input_type(sdata_of(rna.copy())) == "spatialdata"
    with pytest.raises(
        TypeError,
        match="Unsupported data type: list. Supported types: AnnData, MuData, SpatialData, or dict",
    ):
        detect_input_type([rna])
    with pytest.raises(TypeError, match="Unsupported"):
        prepare_data(np.zeros((2, 2)))


def test_strip_setup_state_makes_mudata_writable(mods, tmp_path):
    rna, adt = mods
    mdata = md.MuData({"rna": rna, "adt": adt})
    prep = prepare_mudata(mdata, spatial_keys="spatial")
    mdata.uns["_flattened_ann_data"] = prep.adata
    assert strip_setup_state(mdata) is mdata
    assert "_flattened_ann_data" not in mdata.uns and "_multimodal_setup" in mdata.uns
    mdata.write(tmp_path / "x.h5mu")
    back = md.read_h5mu(tmp_path / "x.h5mu")
    assert list(back.uns["_multimodal_setup"]["modality_order"]) == ["rna", "adt"]


def test_rerun_on_saved_flattened_anndata_keeps_setup(mods, tmp_path):
    rna, adt = mods
    rna.obsp["g1"] = sp.random(N, N, density=0.2, format="csr", random_state=1)
    adt.obsp["g2"] = sp.random(N, N, density=0.2, format="csr", random_state=2)
    prep = prepare_mudata(
        md.MuData({"rna": rna, "adt": adt}),
        spatial_keys={"rna": "g1", "adt": "g2"},
        categorical_covariate_keys=["batch"],
    )
    prep.adata.write_h5ad(tmp_path / "flat.h5ad")
    flat = ad.read_h5ad(tmp_path / "flat.h5ad")
    again = prepare_anndata(flat, categorical_covariate_keys=["batch"])
    assert again.modality_names == ["rna", "adt"] and again.feature_counts == [5, 3]
    assert again.layer is None
    gs = flat.uns["_spatial_graphs"]
    np.testing.assert_array_equal(
        gs["adt"]["adjacency"].toarray(),
        prep.adata.uns["_spatial_graphs"]["adt"]["adjacency"].toarray(),
    )
    # a stored graph of the wrong shape is rejected, naming it
    flat.uns["_spatial_graphs"]["adt"]["adjacency"] = sp.csr_matrix((3, 3))
    with pytest.raises(ValueError, match="adt.*\\(3, 3\\)"):
        prepare_anndata(flat)


@pytest.mark.skipif(
    not (DATA / "multiome_pbmc_muon" / "test_rna_atac.h5mu").exists(),
    reason="shared multiome data not available",
)
def test_real_multiome_mudata():
    mdata = md.read_h5mu(DATA / "multiome_pbmc_muon" / "test_rna_atac.h5mu")
    before = {k: m.X.copy() for k, m in mdata.mod.items()}
    prep = prepare_mudata(mdata, modalities=["RNA", "ATAC"])
    a = prep.adata
    assert prep.modality_names == ["rna", "atac"] and prep.feature_counts == [45, 174]
    assert a.shape == (1000, 219) and sp.isspmatrix_csr(a.X)
    ref = sp.hstack([mdata["rna"].X, mdata["atac"].X]).toarray()
    np.testing.assert_array_equal(a.X.toarray(), ref)
    liks = [
        infer_likelihood(name, block_stats(a.X, sl))
        for name, sl in zip(prep.modality_names, block_slices(prep.feature_counts), strict=True)
    ]
    assert liks == ["gamma_poisson", "multinomial"]  # ATAC counts here are not binary
    for k, X in before.items():
        assert (mdata[k].X != X).nnz == 0
