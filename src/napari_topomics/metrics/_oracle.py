"""Oracle ceiling: θ re-estimated with the true topic matrices."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ._scoring import matched_theta_correlation

if TYPE_CHECKING:
    from napari_topomics.datasets import SimulationTruth

__all__ = ["oracle_theta", "oracle_theta_correlation"]


def _blocks(data: Any) -> dict[str, Any]:
    """``{modality: matrix}`` from a MuData, a dict of AnnData or a dict of matrices."""
    mods = data.mod if hasattr(data, "mod") else data
    if not isinstance(mods, Mapping):
        raise TypeError(f"expected a MuData or a mapping of modalities, got {type(data)!r}")
    return {m: (v.X if hasattr(v, "X") else v) for m, v in mods.items()}


_DENSE_ABOVE = 0.2  # density from which a chunk's counts are held dense


class _Group:
    """The cells of one modality, chunk and batch, with their fixed expected profile.

    Expected frequencies are ``r = a_s θ φ + a_b ambient`` (``a_s`` the topic share).
    Dense blocks (RNA, protein) take two float32 matrix products per EM step; sparse
    ones (ATAC) work on the stored values only.
    """

    def __init__(
        self, pos: np.ndarray, x: sp.csr_matrix, prof: np.ndarray, share: float, bg: np.ndarray
    ) -> None:
        self.pos, self.prof, self.share, self.bg = pos, prof, share, bg
        self.unit = (prof / prof.sum(axis=0, keepdims=True)).T  # (F, K) for the start
        if x.nnz >= _DENSE_ABOVE * x.shape[0] * x.shape[1]:
            self.dense: np.ndarray | None = x.toarray().astype(np.float32)
            self.prof32 = prof.astype(np.float32)
            self.bg32 = bg.astype(np.float32)
        else:
            self.dense = None
            self.x = x
            self.rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            self.phi_nnz = prof[:, x.indices].T.copy()  # (nnz, K)
            self.bg_nnz = bg[x.indices]

    def accumulate(self, theta: np.ndarray) -> np.ndarray:
        """``Σ_f x_nf a_s φ_kf / r_nf`` (to be multiplied by ``θ_nk``)."""
        if self.dense is not None:
            rate = theta.astype(np.float32) @ self.prof32
            rate *= self.share
            rate += self.bg32
            np.maximum(rate, 1e-30, out=rate)
            np.divide(self.dense, rate, out=rate)
            return self.share * (rate @ self.prof32.T).astype(np.float64)
        rate = self.share * np.einsum("ij,ij->i", theta[self.rows], self.phi_nnz) + self.bg_nnz
        ratio = sp.csr_matrix(
            (self.x.data / np.maximum(rate, 1e-300), self.x.indices, self.x.indptr),
            shape=self.x.shape,
        )
        return self.share * np.asarray(ratio @ self.prof.T)

    def backprojection(self) -> np.ndarray:
        """Counts spread over the topics in proportion to each feature's topic weights."""
        x = self.dense if self.dense is not None else self.x
        return np.asarray(x @ self.unit, dtype=np.float64)


def _groups(
    x: sp.csr_matrix,
    phi: np.ndarray,
    batch: np.ndarray | None,
    ambient: np.ndarray | None,
    amb_frac: float,
) -> list[_Group]:
    """Split one modality's chunk by batch (``phi`` is ``(B, K, F)`` with batch offsets)."""
    share = 1.0 - amb_frac if ambient is not None else 1.0
    bg = np.zeros(x.shape[1]) if ambient is None else amb_frac * ambient
    if phi.ndim == 2:
        return [_Group(np.arange(x.shape[0]), x, phi, share, bg)]
    out = []
    for b in np.unique(batch):
        pos = np.flatnonzero(batch == b)
        out.append(_Group(pos, x[pos], phi[b], share, bg))
    return out


def _em_step(groups: list[_Group], theta: np.ndarray) -> np.ndarray:
    acc = np.zeros_like(theta)
    for g in groups:
        acc[g.pos] += g.accumulate(theta[g.pos])
    acc *= theta
    total = acc.sum(axis=1, keepdims=True)
    return np.where(total > 0, acc / np.maximum(total, 1e-300), theta)


def _squarem(
    step: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, n_iter: int, tol: float
) -> np.ndarray:
    """Fixed point of the EM map ``step``, accelerated per cell (guarded SQUAREM, S3).

    Each cycle takes two EM steps, extrapolates along them with a per-cell step length
    ``α ≤ −1`` (``α = −1`` is plain EM), and takes one more EM step. The step length is
    halved towards −1 until no entry falls below a fifth of its current value, so the
    multiplicative EM map is never pushed onto the boundary, where it would stall.
    ``n_iter`` counts EM steps.
    """
    for _ in range(max(1, n_iter // 3)):
        th1 = step(theta)
        th2 = step(th1)
        r = th1 - theta
        v = th2 - th1 - r
        rn = np.linalg.norm(r, axis=1, keepdims=True)
        vn = np.linalg.norm(v, axis=1, keepdims=True)
        ratio = np.divide(rn, vn, out=np.ones_like(rn), where=vn > 1e-12 * rn)
        alpha = -np.clip(ratio, 1.0, 1e3)
        ext = th2
        for _ in range(8):
            cand = theta - 2.0 * alpha * r + alpha**2 * v
            ok = (cand >= 0.2 * theta).all(axis=1, keepdims=True)
            ext = np.where(ok, cand, ext)
            if ok.all():
                break
            alpha = np.where(ok, alpha, -1.0 + 0.5 * (alpha + 1.0))
        ext = ext / ext.sum(axis=1, keepdims=True)
        new = step(ext)
        delta = np.abs(new - theta).max()
        theta = new
        if delta < tol:
            break
    return theta


def oracle_theta(
    data: Any,
    truth: SimulationTruth,
    *,
    modalities: Sequence[str] | None = None,
    n_iter: int = 150,
    tol: float = 1e-5,
    chunk_size: int = 1024,
) -> np.ndarray:
    """θ re-estimated per cell with the TRUE topic matrices (the ceiling for any model).

    Maximum-likelihood mixture weights by EM with every planted quantity fixed: per-batch
    profiles ``φ̃_b`` where batch offsets were planted, and the ambient profile with its
    known share. Counts enter as multinomial observations; binary data (ATAC) as counts
    of one, which is the Poisson limit of ``1 − exp(−ℓ r)`` when ``ℓ r ≪ 1``.

    Parameters
    ----------
    data
        The simulated data: MuData, ``{modality: AnnData}`` or ``{modality: matrix}``.
    truth
        The :class:`~napari_topomics.datasets.SimulationTruth`.
    modalities
        Modalities to use; default all that are in both ``data`` and ``truth``.
    n_iter, tol
        At most ``n_iter`` EM steps, accelerated by SQUAREM (Varadhan & Roland, 2008);
        stop when no θ entry of a chunk moves by more than ``tol`` in one cycle.
    chunk_size
        Cells updated together (counts of modalities denser than 20 % are held dense
        per chunk, never for the whole dataset).

    Returns
    -------
    ``(N, K)`` θ estimate (uniform for a cell without any counts).
    """
    blocks = _blocks(data)
    if modalities is None:
        modalities = [m for m in blocks if m in truth.topic_feature]
    missing = [m for m in modalities if m not in blocks or m not in truth.topic_feature]
    if not modalities or missing:
        raise ValueError(f"modalities {missing or modalities!r} not found in data and truth")
    n_cells, k = truth.theta.shape
    mats = {m: sp.csr_matrix(blocks[m], dtype=np.float64) for m in modalities}
    for m, mat in mats.items():
        if mat.shape != (n_cells, truth.topic_feature[m].shape[1]):
            raise ValueError(
                f"modality {m!r} has shape {mat.shape}, truth expects "
                f"{(n_cells, truth.topic_feature[m].shape[1])}"
            )
    profiles = {}
    for m in modalities:
        phi = truth.topic_feature[m]
        if m in truth.batch_offset and truth.batch is not None:
            tilted = phi[None] * np.exp(truth.batch_offset[m])[:, None, :]
            phi = tilted / tilted.sum(axis=2, keepdims=True)
        profiles[m] = phi
    theta = np.full((n_cells, k), 1.0 / k)
    with threadpool_limits(limits=1, user_api="blas"):  # tiny products: threads only cost
        for c0 in range(0, n_cells, chunk_size):
            rows = slice(c0, min(c0 + chunk_size, n_cells))
            theta[rows] = _solve_chunk(mats, profiles, truth, rows, k, n_iter, tol)
    return theta


def _solve_chunk(
    mats: dict[str, sp.csr_matrix],
    profiles: dict[str, np.ndarray],
    truth: SimulationTruth,
    rows: slice,
    k: int,
    n_iter: int,
    tol: float,
) -> np.ndarray:
    """EM for one chunk of cells, started from the back-projected counts."""
    groups = [
        g
        for m in mats
        for g in _groups(
            mats[m][rows],
            profiles[m],
            None if truth.batch is None else truth.batch[rows],
            truth.ambient_profile.get(m),
            truth.ambient_fraction.get(m, 0.0),
        )
    ]
    start = np.zeros((rows.stop - rows.start, k))
    for g in groups:
        start[g.pos] += g.backprojection()
    total = start.sum(axis=1, keepdims=True)
    start = np.where(total > 0, (start + 1e-3 * total) / np.maximum(total, 1e-300), 1.0)
    start /= start.sum(axis=1, keepdims=True)
    return _squarem(lambda t: _em_step(groups, t), start, n_iter, tol)


def oracle_theta_correlation(data: Any, truth: SimulationTruth, **kwargs: Any) -> float:
    """Matched θ correlation of :func:`oracle_theta` with the planted θ."""
    return matched_theta_correlation(oracle_theta(data, truth, **kwargs), truth.theta)
