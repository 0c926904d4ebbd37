"""The learned neighbourhood prior of spatial models (issue 16 item 4).

The M-step must find how much a cell resembles its neighbours (ρ near 1 on a smooth field,
near 0 on independent cells), the prior must only move, never tighten, and it must be used
only inside the training plan's loss: inference and ``get_elbo`` keep the plain prior.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from napari_topomics.datasets import simulate_tissue
from napari_topomics.models import MultimodalAmortizedLDA
from napari_topomics.module._spatial_prior import NeighbourhoodPrior

pytest.importorskip("torch_geometric")
torch.set_num_threads(1)

K = 4
MU0 = torch.zeros(K)
SIGMA0 = torch.full((K,), 2.0)


def _grid_graph(side: int) -> sp.csr_matrix:
    """4-neighbour grid: binary, symmetric, no self-loops."""
    n = side * side
    rows, cols = [], []
    for i in range(n):
        r, c = divmod(i, side)
        for dr, dc in ((0, 1), (1, 0)):
            rr, cc = r + dr, c + dc
            if rr < side and cc < side:
                j = rr * side + cc
                rows += [i, j]
                cols += [j, i]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def _filled(prior: NeighbourhoodPrior, means: np.ndarray, var: float = 0.01) -> None:
    ind = torch.arange(prior.n_cells)
    prior.record(ind, torch.as_tensor(means, dtype=torch.float32),
                 torch.full((prior.n_cells, K), var))


def test_refit_finds_smooth_fields_and_independent_cells():
    side = 30
    rng = np.random.default_rng(0)
    # a field that changes slowly over the grid: neighbours nearly equal
    r, c = np.divmod(np.arange(side * side), side)
    smooth = np.stack([np.sin(r / 6 + k) + np.cos(c / 5 - k) for k in range(K)], 1)
    prior = NeighbourhoodPrior(_grid_graph(side), MU0, SIGMA0)
    _filled(prior, smooth + rng.normal(0, 0.05, smooth.shape))
    assert prior.refit() > 0.9
    independent = NeighbourhoodPrior(_grid_graph(side), MU0, SIGMA0)
    _filled(independent, rng.normal(0, 1.0, (side * side, K)))
    assert independent.refit() < 0.1
    assert independent.history == [independent.rho]


def test_refit_stays_in_the_unit_interval_and_ignores_unseen_cells():
    side = 10
    prior = NeighbourhoodPrior(_grid_graph(side), MU0, SIGMA0)
    assert prior.refit() == 0.0  # nothing recorded yet: the plain prior
    checker = np.where((np.arange(side * side) % 2)[:, None] == 0, 3.0, -3.0)
    _filled(prior, np.repeat(checker, K, axis=1))  # neighbours anti-correlated
    assert prior.refit() == 0.0
    same = NeighbourhoodPrior(_grid_graph(side), MU0, SIGMA0)
    _filled(same, np.full((side * side, K), 5.0))  # identical neighbours
    assert 0.99 <= same.refit() <= 1.0


def test_location_moves_towards_the_neighbours_by_rho_and_isolated_cells_keep_mu0():
    graph = sp.lil_matrix((4, 4))
    graph[0, 1] = graph[1, 0] = graph[0, 2] = graph[2, 0] = 1  # cell 3 has no neighbour
    prior = NeighbourhoodPrior(graph.tocsr(), MU0 + 1.0, SIGMA0)
    means = np.array([[0.0] * K, [2.0] * K, [4.0] * K, [9.0] * K])
    _filled(prior, means)
    prior.rho = 0.5
    loc = prior.loc(torch.tensor([0, 1, 3]), torch.device("cpu")).numpy()
    np.testing.assert_allclose(loc[0], 1.0 + 0.5 * (3.0 - 1.0))  # neighbours 1, 2: mean 3
    np.testing.assert_allclose(loc[1], 1.0 + 0.5 * (0.0 - 1.0))  # neighbour 0
    np.testing.assert_allclose(loc[2], 1.0)  # isolated: μ0
    prior.rho = 0.0
    np.testing.assert_allclose(prior.loc(torch.arange(4), torch.device("cpu")).numpy(), 1.0)


@pytest.fixture(scope="module")
def domain_tissue():
    """Cells close to their domain's mean (Dirichlet 20) at low depth: neighbours alike."""
    mdata, truth = simulate_tissue(
        n_cells=400, n_topics=K, n_genes=60, n_proteins=0, n_peaks=0, rna_depth=30,
        dirichlet_alpha=20, seed=1,
    )
    adata = mdata.mod["rna"].copy()
    adata.obsm["spatial"] = truth.coords
    return adata, truth


def _spatial_model(adata, **plan):
    data = adata.copy()
    MultimodalAmortizedLDA.setup_anndata(data, spatial_key="spatial")
    model = MultimodalAmortizedLDA(data, n_topics=K, n_hidden=16, spatial_mode="sgc")
    plan = {"neighbourhood_prior": True, **plan}
    model.train(max_epochs=6, batch_size=64, enable_progress_bar=False, plan_kwargs=plan)
    return model


def test_training_learns_rho_and_uses_the_prior_only_inside_the_loss(domain_tissue):
    adata, truth = domain_tissue
    model = _spatial_model(adata)
    prior = model.module.neighbourhood_prior
    assert isinstance(prior, NeighbourhoodPrior) and not prior.active
    assert len(prior.history) == 6
    assert prior.rho > 0.5  # domains: a cell's neighbours share its topics
    assert model.module.neighbour_weight == 0.0  # the prior replaces the likelihood term
    assert prior.seen.all()  # training and validation cells were recorded
    # get_elbo scores the plain prior: switching the bank's ρ off changes nothing
    torch.manual_seed(0)
    elbo = model.get_elbo()
    prior.rho = 0.0
    torch.manual_seed(0)
    assert model.get_elbo() == pytest.approx(elbo, rel=1e-6)
    # and the logged ρ per epoch reaches the history
    assert "neighbourhood_rho" in model.history


def test_rho_falls_to_zero_when_topics_ignore_space(domain_tissue):
    adata, truth = domain_tissue
    shuffled = adata.copy()
    shuffled.obsm["spatial"] = np.random.default_rng(0).permutation(truth.coords)
    prior = _spatial_model(shuffled).module.neighbourhood_prior
    # not exactly 0: the smoothing encoder correlates neighbouring posteriors a little
    domains = _spatial_model(adata).module.neighbourhood_prior
    assert prior.rho < 0.3 and prior.rho < domains.rho - 0.2


def test_prior_is_optional_and_validated(domain_tissue):
    adata, _ = domain_tissue
    model = _spatial_model(adata, neighbourhood_prior=False)
    assert model.module.neighbourhood_prior is None
    assert model.module.neighbour_weight == 6.0  # the likelihood term as before
    with pytest.raises(ValueError, match="neighbourhood_prior"):
        _spatial_model(adata, neighbourhood_prior="yes")
    plain = MultimodalAmortizedLDA.from_data(adata.copy(), n_topics=K, n_hidden=16)
    plain.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert plain.module.neighbourhood_prior is None  # non-spatial models have no graph
