"""A learned neighbourhood prior for spatial models: how much a cell resembles its neighbours.

Each cell's logistic-normal topic vector gets the prior

    z_n ~ N(μ0 + ρ (m̄_n − μ0), σ0²),    m̄_n = mean of the neighbours' posterior means,

where ``μ0`` and ``σ0`` are the contract's prior. ``ρ ∈ [0, 1]`` is not fixed: after every
training epoch it is refitted in closed form to that epoch's posteriors (the M-step of
variational EM), so on a tissue whose neighbours share topics ρ comes out near 1 and the prior
centres each cell on its neighbourhood, while on one whose topics ignore space it falls to 0
and gives the plain prior back. The scale stays the contract's: the prior moves, it does not
tighten, so it matters where a cell's own counts say little (shallow cells) and hardly at all
where they say much. Refitting the scale too made every generator's proportions too flat, and
a fixed neighbourhood likelihood weight is right for one kind of tissue only (both measured:
docs/benchmarks.md, "Generalization").

The neighbours' posterior means come from a memory bank written by the guide inside the
training plan's loss; nothing here is a parameter of the module, and inference
(``get_cell_topic_dist``, ``get_elbo``) uses the plain prior.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def _row_normalised(adjacency: sp.spmatrix) -> sp.csr_matrix:
    degree = np.asarray(adjacency.sum(axis=1), dtype=np.float64).ravel()
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return sp.csr_matrix(sp.diags(inverse) @ adjacency, dtype=np.float32)


class NeighbourhoodPrior:
    """Memory bank of posterior moments and the fitted weight ``ρ`` of the neighbourhood.

    Parameters
    ----------
    adjacency
        Binary, symmetric cell graph without self-loops (cells × cells).
    prior_mu, prior_sigma
        The plain prior's mean and scale, shape ``(K,)``.
    """

    def __init__(self, adjacency: sp.spmatrix, prior_mu: torch.Tensor,
                 prior_sigma: torch.Tensor):
        self.weights = _row_normalised(sp.csr_matrix(adjacency))
        self.squared_weights = self.weights.multiply(self.weights).tocsr()
        self.has_neighbours = np.diff(self.weights.indptr) > 0
        n = self.weights.shape[0]
        self.mu0 = prior_mu.detach().cpu().numpy().astype(np.float32)
        self.sigma0 = prior_sigma.detach().cpu().numpy().astype(np.float32)
        self.mean = np.tile(self.mu0, (n, 1))
        self.var = np.tile(self.sigma0**2, (n, 1))
        self.seen = np.zeros(n, dtype=bool)
        self.rho = 0.0
        #: ρ after each refit, oldest first.
        self.history: list[float] = []
        #: Whether the model uses this prior (on only inside the training plan's loss).
        self.active = False

    @property
    def n_cells(self) -> int:
        return self.weights.shape[0]

    @staticmethod
    def _rows(ind: torch.Tensor) -> np.ndarray:
        return ind.detach().cpu().numpy().astype(np.int64).reshape(-1)

    def record(self, ind: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Store the posterior moments of the cells ``ind`` (detached)."""
        rows = self._rows(ind)
        self.mean[rows] = mean.detach().float().cpu().numpy()
        self.var[rows] = var.detach().float().cpu().numpy()
        self.seen[rows] = True

    def loc(self, ind: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Prior location ``(B, K)`` of the cells ``ind`` (isolated cells get ``μ0``)."""
        rows = self._rows(ind)
        neighbour_mean = np.asarray(self.weights[rows] @ self.mean)
        neighbour_mean[~self.has_neighbours[rows]] = self.mu0
        loc = self.mu0 + self.rho * (neighbour_mean - self.mu0)
        return torch.from_numpy(np.ascontiguousarray(loc, dtype=np.float32)).to(device)

    def refit(self) -> float:
        """M-step: the ``ρ ∈ [0, 1]`` that maximises the bank's expected log-prior.

        With ``y = z − μ0`` and ``x = m̄ − μ0`` over the recorded cells that have a
        neighbour, ``E[(y − ρx)²] = (μ_y − ρμ_x)² + v_y + ρ² Σ_j w_j² v_j`` per topic, so
        ``ρ = Σ μ_x μ_y / σ0² / Σ (μ_x² + Σ_j w_j² v_j) / σ0²``. Returns the new ρ.
        """
        cells = self.seen & self.has_neighbours
        if cells.sum() >= 2:
            y = self.mean[cells] - self.mu0
            x = np.asarray(self.weights[cells] @ self.mean) - self.mu0
            v_x = np.asarray(self.squared_weights[cells] @ self.var)
            precision = 1.0 / self.sigma0**2
            xy = ((x * y).sum(0) * precision).sum()
            xx = ((x * x + v_x).sum(0) * precision).sum()
            self.rho = float(np.clip(xy / xx, 0.0, 1.0)) if xx > 0 else 0.0
        self.history.append(self.rho)
        return self.rho
