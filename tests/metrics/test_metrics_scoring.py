"""Ground-truth scoring: topic matching, θ correlation, marker precision, oracle."""

from __future__ import annotations

import numpy as np
import pytest

from napari_topomics.datasets import simulate_tissue_dict
from napari_topomics.metrics import (
    marker_average_precision,
    match_topics,
    matched_theta_correlation,
    matched_theta_correlations,
    matched_topic_correlation,
    oracle_theta,
    oracle_theta_correlation,
    top_marker_fraction,
)


@pytest.fixture(scope="module")
def sim():
    return simulate_tissue_dict(
        n_cells=400, n_topics=5, n_genes=150, n_proteins=15, n_peaks=200, seed=11
    )


def test_perfect_model_scores_one(sim):
    _, truth = sim
    np.testing.assert_array_equal(match_topics(truth.theta, truth.theta), np.arange(5))
    assert matched_theta_correlation(truth.theta, truth.theta) == pytest.approx(1.0)
    for mod, phi in truth.topic_feature.items():
        assert marker_average_precision(phi.T, truth.markers[mod]) == pytest.approx(1.0)
        assert top_marker_fraction(phi.T, truth.markers[mod]) == pytest.approx(1.0)
        assert matched_topic_correlation(phi.T, phi) == pytest.approx(1.0)


def test_permuted_topics_are_matched_back(sim):
    _, truth = sim
    perm = np.array([3, 0, 4, 1, 2])
    learned = truth.theta[:, perm]  # learned column j is true topic perm[j]
    matching = match_topics(learned, truth.theta)
    np.testing.assert_array_equal(perm[matching], np.arange(5))
    assert matched_theta_correlation(learned, truth.theta) == pytest.approx(1.0)
    phi = truth.topic_feature["rna"].T[:, perm]
    ap = marker_average_precision(phi, truth.markers["rna"], matching)
    assert ap == pytest.approx(1.0)
    # a wrong matching ranks the wrong topic's features: low precision
    wrong = np.roll(matching, 1)
    assert marker_average_precision(phi, truth.markers["rna"], wrong) < 0.2


def test_more_or_fewer_learned_topics(sim):
    _, truth = sim
    rng = np.random.default_rng(0)
    extra = np.column_stack([truth.theta, rng.dirichlet(np.ones(2), size=400)])
    matching = match_topics(extra, truth.theta)
    np.testing.assert_array_equal(matching, np.arange(5))
    fewer = truth.theta[:, :3]
    matching = match_topics(fewer, truth.theta)
    assert (matching == -1).sum() == 2
    per_topic = matched_theta_correlations(fewer, truth.theta, matching)
    np.testing.assert_allclose(per_topic[:3], 1.0)
    np.testing.assert_array_equal(per_topic[3:], 0.0)  # unmatched topics count as 0


def test_random_model_scores_low(sim):
    _, truth = sim
    rng = np.random.default_rng(1)
    theta = rng.dirichlet(np.ones(5), size=400)
    matching = match_topics(theta, truth.theta)
    assert matched_theta_correlation(theta, truth.theta, matching) < 0.25
    phi = rng.dirichlet(np.ones(150), size=5).T
    ap = marker_average_precision(phi, truth.markers["rna"], matching)
    prevalence = truth.markers["rna"].shape[1] / 150
    assert ap < prevalence + 0.15
    assert top_marker_fraction(phi, truth.markers["rna"], matching) < 0.3


def test_specificity_beats_raw_weight_for_shared_features(sim):
    """Raw weights rank highly expressed shared genes above markers; specificity does not."""
    _, truth = sim
    phi = truth.topic_feature["rna"].T
    raw = marker_average_precision(phi, truth.markers["rna"], score="weight")
    spec = marker_average_precision(phi, truth.markers["rna"], score="specificity")
    assert spec == pytest.approx(1.0) and raw < spec


def test_marker_inputs_are_equivalent(sim):
    _, truth = sim
    phi = truth.topic_feature["atac"].T
    by_index = marker_average_precision(phi, truth.markers["atac"])
    by_mask = marker_average_precision(phi, truth.marker_mask("atac"))
    assert by_index == by_mask
    by_profile = marker_average_precision(phi, truth.topic_feature["atac"])
    assert by_profile > 0.9
    with pytest.raises(ValueError, match="features"):
        marker_average_precision(phi[:-1], truth.marker_mask("atac"))
    with pytest.raises(ValueError, match="out of range"):
        marker_average_precision(phi[:10], truth.markers["atac"])


def test_oracle_recovers_theta(sim):
    mods, truth = sim
    theta = oracle_theta(mods, truth)
    assert theta.shape == truth.theta.shape
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    assert matched_theta_correlation(theta, truth.theta) > 0.95
    rna_only = oracle_theta_correlation(mods, truth, modalities=["rna"])
    protein_only = oracle_theta_correlation(mods, truth, modalities=["protein"])
    assert rna_only > protein_only > 0.7  # 15 antibodies carry less than 150 genes


def test_oracle_with_batch_offsets_and_ambient():
    mods, truth = simulate_tissue_dict(
        n_cells=300,
        n_topics=4,
        n_genes=120,
        n_proteins=12,
        n_peaks=0,
        n_batches=3,
        batch_effect=1.0,
        protein_likelihood="multinomial",
        seed=5,
    )
    with_truth = oracle_theta_correlation(mods, truth, modalities=["rna"])
    assert with_truth > 0.95
    # ignoring the planted batch offsets fits worse
    truth.batch_offset.clear()
    assert oracle_theta_correlation(mods, truth, modalities=["rna"]) < with_truth
    with pytest.raises(ValueError, match="atac"):
        oracle_theta(mods, truth, modalities=["atac"])
