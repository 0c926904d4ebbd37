"""The simulator family: every member's planted structure is what its description says."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import kneighbors_graph

from napari_topomics.datasets import (
    GENERATORS,
    simulate_family,
    simulate_tissue,
    simulate_tissue_dict,
)
from napari_topomics.metrics import morans_i

SIZES = dict(n_cells=1200, n_topics=8, n_genes=240, n_proteins=24, n_peaks=200)


@pytest.fixture(scope="module")
def family():
    return {name: simulate_family(name, **SIZES, seed=5) for name in GENERATORS}


def _mean_max_theta(truth) -> float:
    return float(truth.theta.max(axis=1).mean())


def test_every_member_has_full_truth(family):
    for name, (mdata, truth) in family.items():
        assert list(mdata.mod) == ["rna", "protein", "atac"], name
        assert truth.theta.shape == (SIZES["n_cells"], SIZES["n_topics"]), name
        np.testing.assert_allclose(truth.theta.sum(axis=1), 1.0, atol=1e-9)
        for mod, adata in mdata.mod.items():
            assert truth.topic_feature[mod].shape[1] == adata.n_vars, (name, mod)
        assert GENERATORS[name].description


def test_the_original_generator_is_a_member():
    mdata, truth = simulate_family("one_topic", **SIZES, seed=2)
    ref, ref_truth = simulate_tissue(**SIZES, seed=2)
    np.testing.assert_array_equal(truth.theta, ref_truth.theta)
    assert (mdata.mod["rna"].X != ref.mod["rna"].X).nnz == 0


def test_concentration_orders_the_sharpness_of_cells(family):
    sharp, mixed, flat = (_mean_max_theta(family[n][1]) for n in
                          ("mixed_sharp", "mixed", "mixed_flat"))
    assert sharp > 0.75 and flat < 0.5
    assert sharp > mixed + 0.1 > flat + 0.2


def test_shared_topics_are_not_domains(family):
    one, mixed = family["one_topic"][1], family["mixed"][1]
    # more topics than domains, and no domain is a single topic
    assert mixed.domain_means.shape == (6, 8)
    assert mixed.domain_means.max() < 0.9
    # a topic's cells are spread over several domains, unlike the one-topic generator
    def domains_per_topic(truth):
        top = truth.theta.argmax(axis=1)
        spread = []
        for k in range(truth.n_topics):
            counts = np.bincount(truth.domain[top == k], minlength=truth.domain.max() + 1)
            if counts.sum():
                spread.append(counts.max() / counts.sum())
        return float(np.mean(spread))
    assert domains_per_topic(mixed) < domains_per_topic(one) - 0.15


def test_aspatial_topics_have_no_spatial_pattern(family):
    graph = kneighbors_graph(family["aspatial"][1].coords, 8)
    assert np.abs(morans_i(family["aspatial"][1].theta, graph)).max() < 0.06
    graph = kneighbors_graph(family["mixed"][1].coords, 8)
    assert morans_i(family["mixed"][1].theta, graph).mean() > 0.1


def test_shallow_member_has_a_tenth_of_the_depth(family):
    deep, shallow = family["mixed"][0], family["shallow_mixed"][0]
    for mod in ("rna", "protein"):
        ratio = shallow.mod[mod].X.sum() / deep.mod[mod].X.sum()
        assert 0.06 < ratio < 0.15, (mod, ratio)
    assert shallow.mod["atac"].X.nnz < 0.5 * deep.mod["atac"].X.nnz


def _marker_signal(mdata, truth, mod, cells):
    """Mean over topics of the correlation between a cell's marker-block share and its θ."""
    x = mdata.mod[mod].X[cells]
    frac = np.asarray(x.sum(axis=1)).ravel()
    theta = truth.theta[cells]
    corr = []
    for k in range(truth.n_topics):
        share = np.asarray(x[:, truth.markers[mod][k]].sum(axis=1)).ravel() / np.maximum(frac, 1)
        corr.append(np.corrcoef(share, theta[:, k])[0, 1])
    return float(np.mean(corr))


def test_regional_protein_is_informative_only_in_its_domains(family):
    mdata, truth = family["regional_protein"]
    inside = np.isin(truth.domain, [0, 1, 2])
    assert _marker_signal(mdata, truth, "protein", inside) > 0.5
    assert abs(_marker_signal(mdata, truth, "protein", ~inside)) < 0.1
    # the other modalities still carry the topics everywhere
    assert _marker_signal(mdata, truth, "rna", ~inside) > 0.5


def test_k_mismatch_fits_more_topics_than_planted():
    assert GENERATORS["k_mismatch"].fit_topics(8) == 10
    assert GENERATORS["mixed"].fit_topics(8) == 8


def test_overrides_win_over_the_member():
    _, truth = simulate_family("mixed", **SIZES, seed=1, dirichlet_alpha=1.0)
    assert truth.params["dirichlet_alpha"] == 1.0
    assert truth.params["domain_mixing"] == "shared"


def test_bad_member_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown generator 'visium'"):
        simulate_family("visium")
    with pytest.raises(ValueError, match="domain_mixing"):
        simulate_tissue_dict(n_cells=20, n_topics=3, n_genes=10, domain_mixing="blend")
    with pytest.raises(ValueError, match=r"unknown modalities \['adt'\]"):
        simulate_tissue_dict(n_cells=20, n_topics=3, n_genes=10, informative_domains={"adt": [0]})
    with pytest.raises(ValueError, match=r"informative_domains\['rna'\].*\[0, 3\).*\[7\]"):
        simulate_tissue_dict(n_cells=20, n_topics=3, n_genes=10, informative_domains={"rna": [7]})
