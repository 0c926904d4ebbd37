"""Moran's I and kNN batch mixing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import kneighbors_graph

from napari_topomics.metrics import knn_batch_mixing, morans_i


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 30, size=(900, 2))
    return coords, kneighbors_graph(coords, 6)


def test_morans_i_smooth_vs_shuffled(grid):
    coords, graph = grid
    smooth = np.sin(coords[:, 0] / 5.0) + np.cos(coords[:, 1] / 7.0)
    i_smooth = morans_i(smooth, graph)
    assert isinstance(i_smooth, float) and i_smooth > 0.8
    shuffled = np.random.default_rng(1).permutation(smooth)
    assert abs(morans_i(shuffled, graph)) < 0.05
    both = morans_i(np.column_stack([smooth, shuffled]), graph)
    assert both.shape == (2,)
    assert both[0] == pytest.approx(i_smooth)
    assert morans_i(smooth, graph, row_standardise=False) > 0.8


def test_morans_i_checkerboard_negative_and_constant_nan():
    ring = sp.diags([np.ones(99), np.ones(99)], [1, -1], shape=(100, 100)).tolil()
    ring[0, 99] = ring[99, 0] = 1
    alternating = np.tile([1.0, -1.0], 50)
    assert morans_i(alternating, ring) == pytest.approx(-1.0)
    assert np.isnan(morans_i(np.ones(100), ring))
    with pytest.raises(ValueError, match="shape"):
        morans_i(np.ones(50), ring)


def test_batch_mixing_separated_vs_shuffled(grid):
    coords, _ = grid
    separated = (coords[:, 0] > 15).astype(int)
    # only the few cells next to the border see the other batch
    assert knn_batch_mixing(coords, separated) < 0.15
    far = coords + np.where(separated[:, None] == 1, 1000.0, 0.0)
    assert knn_batch_mixing(far, separated) == 0.0
    shuffled = np.random.default_rng(2).permutation(separated)
    assert knn_batch_mixing(coords, shuffled) == pytest.approx(1.0, abs=0.08)
    three = np.random.default_rng(3).integers(3, size=900).astype(str)
    assert knn_batch_mixing(coords, three, k=10) == pytest.approx(1.0, abs=0.08)


def test_batch_mixing_needs_two_batches(grid):
    coords, _ = grid
    with pytest.raises(ValueError, match="two batches"):
        knn_batch_mixing(coords, np.zeros(900))
