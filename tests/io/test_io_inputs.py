"""load_tissue_input on the layouts users have, check_count_modalities, and a tiny fit."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from spatialdata.models import TableModel

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._inputs import TissueInput, check_count_modalities, load_tissue_input
from napari_topomics.io._read import read_tissue
from napari_topomics.io._tables import cell_coordinates

torch.set_num_threads(1)


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _error(func, *args, **kwargs) -> str:
    with pytest.raises(TopomicsInputError) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def _snapshot(table: ad.AnnData) -> dict:
    return {
        "X": _dense(table.X).copy(),
        "layers": {k: _dense(v).copy() for k, v in table.layers.items()},
        "obs": table.obs.copy(),
        "var": table.var.copy(),
        "uns": sorted(table.uns.keys()),
        "obsm": sorted(table.obsm.keys()),
    }


def _assert_same(table: ad.AnnData, snap: dict) -> None:
    np.testing.assert_array_equal(_dense(table.X), snap["X"])
    assert table.layers.keys() == snap["layers"].keys()
    for key, value in snap["layers"].items():
        np.testing.assert_array_equal(_dense(table.layers[key]), value)
    pd.testing.assert_frame_equal(table.obs, snap["obs"])
    pd.testing.assert_frame_equal(table.var, snap["var"])
    assert sorted(table.uns.keys()) == snap["uns"]
    assert sorted(table.obsm.keys()) == snap["obsm"]


def _subtable(table: ad.AnnData, cols, order=None, **parse) -> ad.AnnData:
    """A table of some features of ``table`` (rows reordered by ``order``), re-parsed."""
    order = np.arange(table.n_obs) if order is None else order
    sub = ad.AnnData(
        X=sp.csr_matrix(_dense(table.X)[np.ix_(order, cols)]),
        obs=table.obs.iloc[order][["region", "cell_id"]].copy(),
        var=table.var.iloc[cols].copy(),
    )
    parse = {"region": "cells", "region_key": "region", "instance_key": "cell_id", **parse}
    sub.obs["region"] = pd.Categorical([parse["region"]] * sub.n_obs)
    return TableModel.parse(sub, **parse)


# --- one table, var blocks ------------------------------------------------------------------


def test_feature_type_blocks_become_modalities(tissue, kit):
    table = tissue.tables["table"]
    snap = _snapshot(table)
    out = load_tissue_input(tissue, source="somewhere.zarr")
    assert isinstance(out, TissueInput)
    assert out.modalities == ["rna", "protein", "atac"] == list(out.data.mod)
    assert (out.table, out.element.name, out.element.kind) == ("table", "cells", "labels")
    assert out.source == "somewhere.zarr" and out.coordinate_system == "global"
    names = list(table.obs_names)
    X = _dense(table.X)
    features = table.var_names
    for name, kind in [("rna", "Gene Expression"), ("protein", "Antibody Capture"),
                       ("atac", "Peaks")]:  # fmt: skip
        cols = np.flatnonzero(table.var["feature_types"] == kind)
        mod = out.data.mod[name]
        assert list(mod.obs_names) == names
        assert list(mod.var_names) == list(features[cols])
        assert sp.issparse(mod.X)
        np.testing.assert_array_equal(_dense(mod.X), X[:, cols])
    assert list(out.obs_names) == names
    np.testing.assert_array_equal(out.instance_ids, table.obs["cell_id"].to_numpy())
    expected_xy = cell_coordinates(tissue, "table").to_numpy()
    np.testing.assert_allclose(out.data.obsm["spatial"], expected_xy)
    np.testing.assert_allclose(out.coordinates.to_numpy(), expected_xy)
    assert list(out.data.obs["batch"]) == list(table.obs["batch"])
    _assert_same(table, snap)


def test_modalities_are_copies_of_the_table(tissue):
    table = tissue.tables["table"]
    snap = _snapshot(table)
    out = load_tissue_input(tissue, modalities=["rna"])
    mod = out.data.mod["rna"]
    assert not mod.is_view
    assert not np.shares_memory(mod.X.data, table.X.data)
    mod.X.data[:] = -1.0
    out.data.obs["batch"] = "changed"
    out.data.obsm["spatial"][:] = 0.0
    _assert_same(table, snap)


def test_selecting_and_ordering_blocks(tissue):
    out = load_tissue_input(tissue, modalities=["ADT", "RNA"])
    assert out.modalities == ["protein", "rna"]
    assert load_tissue_input(tissue, modalities="atac").modalities == ["atac"]
    msg = _error(load_tissue_input, tissue, modalities=["rna", "metabolites"])
    assert "'metabolites'" in msg and "['rna', 'protein', 'atac']" in msg


def test_user_modality_key_column(tissue, kit):
    table = tissue.tables["table"]
    table.var["assay"] = np.where(table.var["feature_types"] == "Gene Expression", "RNA", "ADT")
    table.var.loc[table.var["feature_types"] == "Peaks", "assay"] = "metabolite"
    out = load_tissue_input(tissue, modality_key="assay")
    assert out.modalities == ["rna", "protein", "metabolite"]
    assert out.data.mod["protein"].n_vars == kit.N_PROT
    msg = _error(load_tissue_input, tissue, modality_key="kind")
    assert "'kind'" in msg and "'feature_types'" in msg and "'assay'" in msg


def test_block_layers_pick_a_layer_per_modality(tissue, kit):
    table = tissue.tables["table"]
    out = load_tissue_input(tissue, layers={"RNA": "lognorm"})  # a kind synonym works too
    rna_cols = np.flatnonzero(table.var["feature_types"] == "Gene Expression")
    prot_cols = np.flatnonzero(table.var["feature_types"] == "Antibody Capture")
    np.testing.assert_allclose(
        _dense(out.data.mod["rna"].X), _dense(table.layers["lognorm"])[:, rna_cols]
    )
    np.testing.assert_array_equal(_dense(out.data.mod["protein"].X), _dense(table.X)[:, prot_cols])
    msg = _error(load_tissue_input, tissue, layers="raw")
    assert "'raw'" in msg and "'counts'" in msg and "'lognorm'" in msg
    msg = _error(load_tissue_input, tissue, layers={"chromatin_state": "counts"})
    assert "'chromatin_state'" in msg and "'atac'" in msg


# --- one table, layers as modalities; single modality ---------------------------------------


def test_layers_as_modalities_of_one_table(tissue):
    table = tissue.tables["table"]
    del table.var["feature_types"]
    table.layers["spliced"] = table.X.copy()
    table.layers["unspliced"] = sp.csr_matrix(_dense(table.X) * 2)
    out = load_tissue_input(tissue, layers={"spliced": "spliced", "unspliced": "unspliced"})
    assert out.modalities == ["spliced", "unspliced"]
    np.testing.assert_array_equal(_dense(out.data.mod["unspliced"].X), _dense(table.X) * 2)
    assert out.data.mod["spliced"].n_vars == table.n_vars
    msg = _error(load_tissue_input, tissue, layers={"a": "spliced", "b": "velocity"})
    assert "'velocity'" in msg and "'unspliced'" in msg


def test_single_modality_table(tissue):
    table = tissue.tables["table"]
    del table.var["feature_types"]
    out = load_tissue_input(tissue)
    assert out.modalities == ["rna"] and out.data.mod["rna"].n_vars == table.n_vars
    assert load_tissue_input(tissue, modalities="protein").modalities == ["protein"]
    dense = load_tissue_input(tissue, layers="lognorm").data.mod["rna"].X
    assert isinstance(dense, np.ndarray)
    np.testing.assert_allclose(dense, table.layers["lognorm"])
    msg = _error(load_tissue_input, tissue, modalities=["rna", "protein"])
    assert "modality_key" in msg and "feature_types" in msg


# --- one table per modality -----------------------------------------------------------------


def test_one_table_per_modality_joined_on_instance_ids(tissue, kit):
    table = tissue.tables["table"]
    rna_cols = np.arange(kit.N_RNA)
    prot_cols = np.arange(kit.N_RNA, kit.N_RNA + kit.N_PROT)
    shuffled = np.random.default_rng(3).permutation(table.n_obs)
    tissue.tables["t_rna"] = _subtable(table, rna_cols)
    tissue.tables["t_prot"] = _subtable(table, prot_cols, order=shuffled)
    out = load_tissue_input(tissue, modalities={"rna": "t_rna", "protein": "t_prot"})
    assert out.table == "t_rna" and out.modalities == ["rna", "protein"]
    np.testing.assert_array_equal(_dense(out.data.mod["protein"].X), _dense(table.X)[:, prot_cols])
    np.testing.assert_array_equal(out.instance_ids, table.obs["cell_id"].to_numpy())
    # the protein table as the reference: rows follow its (shuffled) order
    ref = load_tissue_input(tissue, "t_prot", modalities={"rna": "t_rna", "protein": "t_prot"})
    np.testing.assert_array_equal(
        _dense(ref.data.mod["rna"].X), _dense(table.X)[shuffled][:, rna_cols]
    )


def test_per_modality_tables_must_share_cells_and_element(tissue, kit):
    table = tissue.tables["table"]
    tissue.tables["t_rna"] = _subtable(table, np.arange(kit.N_RNA))
    tissue.tables["t_few"] = _subtable(table, np.arange(kit.N_RNA, 9), order=np.arange(8))
    msg = _error(load_tissue_input, tissue, modalities={"rna": "t_rna", "protein": "t_few"})
    assert "'t_few'" in msg and "lacks 4 of the 12 cells" in msg
    msg = _error(load_tissue_input, tissue, modalities={"rna": "t_rna", "protein": "t_prot"})
    assert "'t_prot'" in msg and "'t_rna'" in msg
    nuclei = tissue.labels["cells"].copy()
    tissue.labels["nuclei"] = nuclei
    tissue.tables["t_nuc"] = _subtable(table, np.arange(kit.N_RNA), region="nuclei")
    msg = _error(load_tissue_input, tissue, modalities={"rna": "t_rna", "protein": "t_nuc"})
    assert "'t_nuc'" in msg and "'cells'" in msg and "'nuclei'" in msg


# --- a MuData beside the store --------------------------------------------------------------


def _mudata_for(table: ad.AnnData, index: pd.Index, kit) -> md.MuData:
    X = _dense(table.X)
    rna = ad.AnnData(X[:, : kit.N_RNA].copy(), obs=pd.DataFrame(index=index))
    prot = ad.AnnData(
        X[:, kit.N_RNA : kit.N_RNA + kit.N_PROT].copy(), obs=pd.DataFrame(index=index)
    )
    with md.set_options(pull_on_update=False):
        return md.MuData({"rna": rna, "prot": prot})


def test_mudata_file_matched_by_obs_names_or_instance_ids(tissue, kit, tmp_path, unchanged):
    table = tissue.tables["table"]
    order = np.random.default_rng(5).permutation(table.n_obs)
    by_name = _mudata_for(table[order], table.obs_names[order], kit)
    path = tmp_path / "cells.h5mu"
    by_name.write(path)
    unchanged(tmp_path)
    out = load_tissue_input(tissue, mudata=path)
    assert out.modalities == ["rna", "prot"]
    np.testing.assert_array_equal(_dense(out.data.mod["rna"].X), _dense(table.X)[:, : kit.N_RNA])
    ids = pd.Index(table.obs["cell_id"].astype(str).to_numpy()[order])
    by_id = _mudata_for(table[order], ids, kit)
    out = load_tissue_input(tissue, mudata=by_id, modalities=["protein"])
    assert out.modalities == ["prot"]
    np.testing.assert_array_equal(
        _dense(out.data.mod["prot"].X), _dense(table.X)[:, kit.N_RNA : kit.N_RNA + kit.N_PROT]
    )


def test_mudata_mismatches_are_named(tissue, kit, tmp_path):
    table = tissue.tables["table"]
    strangers = _mudata_for(table, pd.Index([f"bc{i}" for i in range(table.n_obs)]), kit)
    msg = _error(load_tissue_input, tissue, mudata=strangers)
    assert "neither the obs_names" in msg and "0 of 12" in msg and "'bc0'" in msg
    partial = _mudata_for(table, table.obs_names, kit)
    with md.set_options(pull_on_update=False):
        partial = md.MuData({"rna": partial["rna"], "prot": partial["prot"][2:].copy()})
    msg = _error(load_tissue_input, tissue, mudata=partial)
    assert "'prot'" in msg and "lacks 2 of the 12 cells" in msg
    missing = tmp_path / "absent.h5mu"
    assert str(missing) in _error(load_tissue_input, tissue, mudata=missing)
    msg = _error(load_tissue_input, tissue, mudata=partial, modalities=["atac"])
    assert "'atac'" in msg and "'prot'" in msg


# --- other errors and the store -------------------------------------------------------------


def test_zero_cell_table_and_unknown_tables(tissue, kit):
    msg = _error(load_tissue_input, tissue, modalities={"rna": "table", "protein": "nope"})
    assert "'nope'" in msg and "'table'" in msg
    # TableModel.parse refuses 0-row annotating tables; a plain one, or one filtered in place
    # after parsing, still reaches us
    tissue.tables["empty"] = TableModel.parse(ad.AnnData(np.zeros((0, 2), dtype=np.float32)))
    msg = _error(load_tissue_input, tissue, "empty")
    assert "'empty'" in msg and "0 rows" in msg
    tissue.tables["table"]._inplace_subset_obs(np.array([], dtype=np.int64))
    msg = _error(load_tissue_input, tissue, "table")
    assert "'table'" in msg and "0 rows" in msg


def test_rows_of_the_chosen_element_only(tissue, kit):
    table = tissue.tables["table"]
    tissue.labels["nuclei"] = tissue.labels["cells"].copy()
    both = table.copy()
    regions = np.where(np.arange(table.n_obs) < 5, "nuclei", "cells")
    both.obs["region"] = pd.Categorical(regions)
    del both.uns["spatialdata_attrs"]
    tissue.tables["both"] = TableModel.parse(
        both, region=["cells", "nuclei"], region_key="region", instance_key="cell_id"
    )
    assert "several elements" in _error(load_tissue_input, tissue, "both")
    out = load_tissue_input(tissue, "both", element="nuclei")
    assert list(out.obs_names) == list(table.obs_names[:5])
    np.testing.assert_array_equal(_dense(out.data.mod["rna"].X), _dense(table.X)[:5, : kit.N_RNA])


def test_store_input_leaves_files_and_objects_unchanged(tissue_store, unchanged):
    unchanged(tissue_store)
    sdata = read_tissue(tissue_store)
    snap = _snapshot(sdata.tables["table"])
    out = load_tissue_input(sdata, coordinate_system="micron")
    assert out.source == str(tissue_store) and out.coordinate_system == "micron"
    msg = _error(load_tissue_input, sdata, modalities=["rna", "spatial_rna"])
    assert "'spatial_rna'" in msg
    msg = _error(load_tissue_input, sdata, coordinate_system="pixels")
    assert "'pixels'" in msg and "'micron'" in msg
    _assert_same(sdata.tables["table"], snap)


# --- non-count data -------------------------------------------------------------------------


def test_check_count_modalities_names_the_modality(tissue):
    table = tissue.tables["table"]
    counts = load_tissue_input(tissue)
    check_count_modalities(counts.data, {"atac": "bernoulli", "rna": "nb"})  # raw counts pass
    logged = load_tissue_input(tissue, layers={"rna": "lognorm"})
    msg = _error(check_count_modalities, logged.data, {})
    assert "'rna'" in msg and "non-integer" in msg and "gaussian" in msg
    msg = _error(check_count_modalities, logged.data, {"rna": "gamma_poisson"})
    assert "'gamma_poisson'" in msg
    check_count_modalities(logged.data, {"rna": "Gaussian"})  # continuous data is allowed
    msg = _error(check_count_modalities, counts.data, {"protein": "bernoulli"})
    assert "'protein'" in msg and "0 and 1" in msg
    X = _dense(table.X)
    X[0, 0] = -2.0
    table.X = sp.csr_matrix(X)
    negative = load_tissue_input(tissue)
    assert "negative" in _error(check_count_modalities, negative.data, {"rna": "nb"})
    assert "'dna'" in _error(check_count_modalities, counts.data, {"dna": "nb"})
    assert "'poisson'" in _error(check_count_modalities, counts.data, {"rna": "poisson"})


def test_what_the_model_does_with_non_counts_today(tissue):
    """Inferred likelihood: ValueError; explicit count likelihood: only a warning (rounding)."""
    from napari_topomics.models import MultimodalAmortizedLDA

    logged = load_tissue_input(tissue, modalities=["rna"], layers={"rna": "lognorm"}).data
    with pytest.raises(ValueError, match="non-integer"):
        MultimodalAmortizedLDA.from_data(logged, n_topics=3)
    logged = load_tissue_input(tissue, modalities=["rna"], layers={"rna": "lognorm"}).data
    with pytest.warns(UserWarning, match="non-integer"):
        MultimodalAmortizedLDA.from_data(logged, n_topics=3, likelihoods=["gamma_poisson"])


def test_tissue_input_trains_the_model(tissue):
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = 0
    out = load_tissue_input(tissue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MultimodalAmortizedLDA.from_data(out.data, n_topics=3, n_hidden=8)
        model.train(max_epochs=1, batch_size=8, enable_progress_bar=False)
    assert model.modality_names == out.modalities
    theta = model.get_cell_topic_dist(return_dataframe=True)
    assert theta.shape == (len(out.obs_names), 3)
    assert list(theta.index.astype(str)) == list(out.obs_names)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)
    assert len(model.history["elbo_train"]) == 1
