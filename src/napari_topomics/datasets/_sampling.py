"""Per-block count sampling for the simulator (NB, multinomial, Bernoulli)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._profiles import dense_to_csr_parts

SLICE_ROWS = 1024  # rows sampled densely at once inside a block
_ATAC_NEWTON_STEPS = 2  # relative error of the expected open count < 1e-4


@dataclass(frozen=True)
class NoiseModel:
    """How one modality turns topic mixtures into observations.

    ``profile`` is ``(K, F)`` or, with batch offsets, ``(n_batches, K, F)`` (float32);
    the expected frequencies are ``r = (1 − a) θ φ_batch + a · ambient``.
    """

    kind: Literal["nb", "multinomial", "bernoulli"]
    profile: np.ndarray
    ambient: np.ndarray | None = None
    ambient_fraction: float = 0.0
    dispersion: np.ndarray | None = None

    def rates(self, theta: np.ndarray, batch: np.ndarray | None) -> np.ndarray:
        """``(rows, F)`` float32 expected feature frequencies (rows sum to 1)."""
        theta32 = theta.astype(np.float32)
        if self.profile.ndim == 3:
            if batch is None:
                raise ValueError("per-batch profiles need batch labels")
            rate = np.empty((theta.shape[0], self.profile.shape[2]), dtype=np.float32)
            for b in np.unique(batch):
                sel = batch == b
                rate[sel] = theta32[sel] @ self.profile[b]
        else:
            rate = theta32 @ self.profile
        if self.ambient is not None and self.ambient_fraction > 0:
            rate *= 1.0 - self.ambient_fraction
            rate += (self.ambient_fraction * self.ambient).astype(np.float32)
        return rate


def n_threads() -> int:
    """Worker threads for sampling (numpy's generators release the GIL)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def sample_nb(mean: np.ndarray, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma-Poisson draw with the given mean and NB size (``Var = μ + μ²/size``)."""
    lam = rng.standard_gamma(size, size=mean.shape)
    lam *= mean
    lam /= size
    return rng.poisson(lam)


def sample_multinomial(rate: np.ndarray, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multinomial counts with totals ``round(depth)`` and probabilities ``rate``."""
    pvals = rate.astype(np.float64)
    pvals /= pvals.sum(axis=1, keepdims=True)
    return rng.multinomial(np.rint(depth).astype(np.int64), pvals)


def calibrate_bernoulli(rate: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Library ``ℓ`` with ``Σ_f 1 − exp(−ℓ r_f) = target`` per row.

    Newton's method started at ``ℓ = target``: the left side is concave and increasing in
    ``ℓ`` and at most ``ℓ``, so the iterates approach the root from below.
    """
    lib = target.astype(np.float64).copy()
    for _ in range(_ATAC_NEWTON_STEPS):
        surv = np.exp(-lib[:, None].astype(np.float32) * rate)
        expected = rate.shape[1] - surv.sum(axis=1, dtype=np.float64)
        slope = np.einsum("ij,ij->i", rate, surv, dtype=np.float64)
        lib += (target - expected) / np.maximum(slope, 1e-12)
    return lib


def sample_block(
    model: NoiseModel,
    theta: np.ndarray,
    batch: np.ndarray | None,
    library: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample the rows of one random-stream block, :data:`SLICE_ROWS` rows at a time.

    ``library`` is the expected total (NB, multinomial) or the target number of open
    features (Bernoulli, replaced by the calibrated ``ℓ``).

    Returns
    -------
    data, indices, counts
        The block's non-zeros as CSR pieces (see :func:`dense_to_csr_parts`).
    library
        The library actually used per row.
    """
    library = np.array(library, dtype=np.float64)
    pieces = []
    for s0 in range(0, theta.shape[0], SLICE_ROWS):
        s1 = min(s0 + SLICE_ROWS, theta.shape[0])
        rate = model.rates(theta[s0:s1], None if batch is None else batch[s0:s1])
        lib = library[s0:s1]
        if model.kind == "bernoulli":
            lib = calibrate_bernoulli(rate, lib)
            library[s0:s1] = lib
            prob = -np.expm1(-lib[:, None].astype(np.float32) * rate)
            dense = rng.random(rate.shape, dtype=np.float32) < prob
        elif model.kind == "multinomial":
            dense = sample_multinomial(rate, lib, rng)
        else:
            assert model.dispersion is not None
            dense = sample_nb(lib[:, None] * rate, model.dispersion, rng)
        pieces.append(dense_to_csr_parts(dense))
    data, indices, counts = (np.concatenate([p[i] for p in pieces]) for i in range(3))
    return data, indices, counts, library
