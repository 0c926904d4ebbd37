"""The simulator: shapes, sparsity, determinism, planted structure and noise models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph

from napari_topomics.datasets import SimulationTruth, simulate_tissue, simulate_tissue_dict
from napari_topomics.metrics import morans_i

SMALL = dict(n_cells=800, n_topics=4, n_genes=200, n_proteins=12, n_peaks=300)


@pytest.fixture(scope="module")
def small():
    return simulate_tissue(**SMALL, seed=3)


def test_shapes_types_and_annotations(small):
    mdata, truth = small
    assert isinstance(truth, SimulationTruth)
    assert list(mdata.mod) == ["rna", "protein", "atac"]
    n, k = SMALL["n_cells"], SMALL["n_topics"]
    sizes = {"rna": 200, "protein": 12, "atac": 300}
    for mod, adata in mdata.mod.items():
        assert adata.shape == (n, sizes[mod])
        assert sp.issparse(adata.X) and adata.X.format == "csr"
        assert adata.X.dtype == np.float32
        assert adata.X.has_canonical_format
        assert (adata.obs_names == mdata.obs_names).all()
        np.testing.assert_array_equal(adata.obsm["spatial"], truth.coords)
        assert adata.obs["domain"].dtype == "category"
        assert truth.topic_feature[mod].shape == (k, sizes[mod])
    assert mdata.obsm["spatial"].shape == (n, 2)
    assert mdata.obs["domain"].dtype == "category"
    assert "batch" not in mdata.obs and truth.batch is None
    assert truth.theta.shape == (n, k) and truth.domain.shape == (n,)
    assert mdata.var_names.is_unique


def test_theta_on_simplex_and_profiles_are_distributions(small):
    _, truth = small
    assert (truth.theta >= 0).all()
    np.testing.assert_allclose(truth.theta.sum(axis=1), 1.0, atol=1e-12)
    for phi in truth.topic_feature.values():
        assert (phi > 0).all()
        np.testing.assert_allclose(phi.sum(axis=1), 1.0, atol=1e-12)


def test_marker_blocks_are_disjoint_and_dominant(small):
    _, truth = small
    for mod, markers in truth.markers.items():
        k, n_mk = markers.shape
        assert k == SMALL["n_topics"] and n_mk >= 1
        assert np.unique(markers).size == k * n_mk  # no feature in two blocks
        phi = truth.topic_feature[mod]
        # each marker weighs more in its own topic than in any other
        for t in range(k):
            own = phi[t, markers[t]]
            other = np.delete(phi[:, markers[t]], t, axis=0).max(axis=0)
            assert (own > other).all()


def test_depths_and_sparsity():
    mods, truth = simulate_tissue_dict(
        **SMALL, rna_depth=2000, protein_depth=800, atac_open_fraction=0.08, seed=0
    )
    rna_tot = np.asarray(mods["rna"].X.sum(axis=1)).ravel()
    assert abs(rna_tot.mean() / 2000 - 1) < 0.1
    assert rna_tot.std() / rna_tot.mean() > 0.25  # log-normal library sizes
    prot_tot = np.asarray(mods["protein"].X.sum(axis=1)).ravel()
    assert abs(prot_tot.mean() / 800 - 1) < 0.1
    atac = mods["atac"].X
    assert set(np.unique(atac.data)) == {1.0}
    assert abs(atac.nnz / np.prod(atac.shape) - 0.08) < 0.01
    assert (mods["rna"].X.data > 0).all() and np.all(
        mods["rna"].X.data == np.round(mods["rna"].X.data)
    )


def test_counts_follow_the_planted_means(small):
    mdata, truth = small
    lib = truth.library_size
    for mod in ("rna", "protein"):
        a = truth.ambient_fraction.get(mod, 0.0)
        rate = (1 - a) * truth.theta @ truth.topic_feature[mod]
        if mod in truth.ambient_profile:
            rate += a * truth.ambient_profile[mod]
        expected = (lib[mod][:, None] * rate).mean(axis=0)
        observed = np.asarray(mdata.mod[mod].X.mean(axis=0)).ravel()
        assert np.corrcoef(np.log(expected), np.log(observed + 0.1))[0, 1] > 0.97
    p_open = -np.expm1(-lib["atac"][:, None] * (truth.theta @ truth.topic_feature["atac"]))
    observed = np.asarray(mdata.mod["atac"].X.mean(axis=0)).ravel()
    assert np.abs(observed - p_open.mean(axis=0)).max() < 0.1


def test_protein_ambient_background(small):
    mdata, truth = small
    assert truth.ambient_fraction["protein"] == pytest.approx(0.15)
    np.testing.assert_allclose(truth.ambient_profile["protein"].sum(), 1.0)
    # a topic's markers are still counted in cells without that topic (ambient floor)
    x = mdata.mod["protein"].X.toarray()
    t = 0
    low = truth.theta[:, t] < 0.01
    assert low.sum() > 20
    assert x[np.ix_(low, truth.markers["protein"][t])].mean() > 1.0


def test_multinomial_protein_totals():
    kw = {**SMALL, "n_genes": 0, "n_peaks": 0}
    mods, truth = simulate_tissue_dict(**kw, protein_likelihood="multinomial", seed=1)
    assert list(mods) == ["protein"]
    tot = np.asarray(mods["protein"].X.sum(axis=1)).ravel()
    np.testing.assert_array_equal(tot, np.rint(truth.library_size["protein"]))
    assert "protein" not in truth.dispersion


def test_determinism_seed_and_chunk_size():
    kw = dict(n_cells=5000, n_topics=3, n_genes=40, n_proteins=6, n_peaks=50)
    a, ta = simulate_tissue_dict(**kw, seed=7, chunk_size=20000)
    b, tb = simulate_tissue_dict(**kw, seed=7, chunk_size=1)  # one 4096-row block a chunk
    c, _ = simulate_tissue_dict(**kw, seed=8)
    for mod in a:
        assert (a[mod].X != b[mod].X).nnz == 0
        assert (a[mod].X != c[mod].X).nnz > 0
    np.testing.assert_array_equal(ta.theta, tb.theta)
    # one modality's counts do not depend on another's size
    d, _ = simulate_tissue_dict(**{**kw, "n_peaks": 0}, seed=7)
    assert (a["rna"].X != d["rna"].X).nnz == 0


@pytest.mark.parametrize("layout", ["grid", "ring"])
def test_theta_is_spatially_smooth(layout):
    _, truth = simulate_tissue_dict(
        n_cells=1500,
        n_topics=5,
        n_genes=20,
        n_proteins=0,
        n_peaks=0,
        spatial_layout=layout,
        seed=2,
    )
    graph = kneighbors_graph(truth.coords, 8)
    smooth = morans_i(truth.theta, graph)
    assert (smooth > 0.4).all()
    shuffled = morans_i(np.random.default_rng(0).permutation(truth.theta), graph)
    assert (np.abs(shuffled) < 0.05).all()
    # domains are contiguous: nearly all neighbours share the domain
    rows, cols = graph.nonzero()
    assert (truth.domain[rows] == truth.domain[cols]).mean() > 0.85
    # each domain is dominated by one topic
    dominant = [truth.theta[truth.domain == d].mean(axis=0).max() for d in range(5)]
    assert min(dominant) > 0.45


def test_iid_dirichlet_without_domains():
    _, truth = simulate_tissue_dict(
        n_cells=1500,
        n_topics=4,
        n_genes=20,
        n_proteins=0,
        n_peaks=0,
        domain_strength=0.0,
        dirichlet_alpha=0.5,
        seed=2,
    )
    graph = kneighbors_graph(truth.coords, 8)
    assert (np.abs(morans_i(truth.theta, graph)) < 0.05).all()
    np.testing.assert_allclose(truth.theta.mean(axis=0), 0.25, atol=0.03)


def test_batch_effect_present_when_asked():
    kw = dict(n_cells=1200, n_topics=3, n_genes=150, n_proteins=0, n_peaks=0, n_batches=2)
    mdata, truth = simulate_tissue(**kw, batch_effect=1.0, seed=4)
    assert mdata.obs["batch"].dtype == "category"
    assert list(mdata.obs["batch"].cat.categories) == ["batch_0", "batch_1"]
    assert set(np.unique(truth.batch)) == {0, 1}
    offset = truth.batch_offset["rna"]
    assert offset.shape == (2, 150)

    def log_ratio(x, b):
        norm = x.multiply(1.0 / x.sum(axis=1)).tocsr()
        m0 = np.asarray(norm[b == 0].mean(axis=0)).ravel()
        m1 = np.asarray(norm[b == 1].mean(axis=0)).ravel()
        return np.log(m1 + 1e-6) - np.log(m0 + 1e-6)

    lr = log_ratio(mdata.mod["rna"].X, truth.batch)
    assert np.corrcoef(lr, offset[1] - offset[0])[0, 1] > 0.8
    mods, truth0 = simulate_tissue_dict(**kw, batch_effect=0.0, seed=4)
    np.testing.assert_array_equal(truth0.batch_offset["rna"], 0.0)
    assert np.abs(log_ratio(mods["rna"].X, truth0.batch)).mean() < 0.5 * np.abs(lr).mean()


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="protein"):
        simulate_tissue_dict(n_cells=10, n_topics=8, n_proteins=5, n_markers=1)
    with pytest.raises(ValueError, match="spatial_layout"):
        simulate_tissue_dict(n_cells=10, spatial_layout="hex")
    with pytest.raises(ValueError, match="protein_likelihood"):
        simulate_tissue_dict(n_cells=10, protein_likelihood="poisson")
