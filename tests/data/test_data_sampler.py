"""CSR neighbour sampler: exact and bounded-fan-out subgraphs, seeds first (spec §3.11.4, §7)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.data import NeighbourSampler, Subgraph, symmetrize_graph


def _random_graph(n, density, seed, symmetric=False):
    g = sp.random(n, n, density=density, format="csr", random_state=seed)
    return symmetrize_graph(g) if symmetric else g


def _ring(n, reach=3):
    """Each node linked to its ±1..±reach neighbours (given one-way; the sampler symmetrises)."""
    i = np.arange(n)
    rows = np.tile(i, reach)
    cols = np.concatenate([(i + d) % n for d in range(1, reach + 1)])
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n))


def _edge_set(nodes, edge_index):
    return set(zip(nodes[edge_index[0]].tolist(), nodes[edge_index[1]].tolist(), strict=True))


def _graph_edges_among(A, nodes):
    sub = symmetrize_graph(A)[nodes][:, nodes].tocoo()
    return set(zip(nodes[sub.row].tolist(), nodes[sub.col].tolist(), strict=True))


def _check_subgraph(sg, A, seeds):
    assert isinstance(sg, Subgraph)
    assert sg.nodes.dtype == np.int64 and sg.edge_index.dtype == np.int64
    assert sg.edge_index.shape[0] == 2
    np.testing.assert_array_equal(sg.nodes[: sg.n_seeds], seeds)
    np.testing.assert_array_equal(sg.seed_positions, np.arange(len(seeds)))
    assert sg.seed_positions.dtype == np.int64
    assert np.unique(sg.nodes).size == sg.nodes.size  # no node twice
    assert sg.n_nodes == sg.nodes.size and sg.n_edges == sg.edge_index.shape[1]
    if sg.n_edges:
        assert sg.edge_index.min() >= 0 and sg.edge_index.max() < sg.n_nodes
    edges = _edge_set(sg.nodes, sg.edge_index)
    assert len(edges) == sg.n_edges  # no duplicate edges
    assert all(a != b for a, b in edges)  # no self-loops
    # exactly the graph's edges among the nodes (both directions)
    assert edges == _graph_edges_among(A, sg.nodes)


@pytest.mark.parametrize("n_hops", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_matches_k_hop_subgraph(n_hops, seed):
    torch = pytest.importorskip("torch")
    from torch_geometric.utils import k_hop_subgraph

    torch.set_num_threads(1)
    n = 200
    A = _random_graph(n, 0.01, seed)  # asymmetric on purpose
    sym = symmetrize_graph(A).tocoo()
    edge_index = torch.tensor(np.stack([sym.row, sym.col]), dtype=torch.long)
    rng = np.random.default_rng(seed)
    seeds = rng.choice(n, size=7, replace=False)

    sg = NeighbourSampler(A).sample(seeds, n_hops)
    subset, sub_edges, _, _ = k_hop_subgraph(
        torch.as_tensor(seeds), n_hops, edge_index, relabel_nodes=False, num_nodes=n
    )
    _check_subgraph(sg, A, seeds)
    assert set(sg.nodes.tolist()) == set(subset.tolist())
    ref_edges = set(zip(sub_edges[0].tolist(), sub_edges[1].tolist(), strict=True))
    assert _edge_set(sg.nodes, sg.edge_index) == ref_edges


def test_exact_nodes_ordered_by_hop():
    A = _ring(50, reach=1)
    sg = NeighbourSampler(A).sample([10, 30], 2)
    # seeds, then hop-1 nodes (ascending), then hop-2 nodes (ascending)
    np.testing.assert_array_equal(sg.nodes, [10, 30, 9, 11, 29, 31, 8, 12, 28, 32])


def test_zero_hops_gives_seeds_and_their_edges():
    A = _ring(20, reach=1)
    sg = NeighbourSampler(A).sample([5, 6, 9], 0)
    np.testing.assert_array_equal(sg.nodes, [5, 6, 9])
    assert _edge_set(sg.nodes, sg.edge_index) == {(5, 6), (6, 5)}


def test_sample_neighbours_per_row_bound_without_replacement():
    A = _random_graph(300, 0.03, 5, symmetric=True)
    s = NeighbourSampler(A)
    rng = np.random.default_rng(0)
    frontier = rng.choice(300, size=40, replace=False)
    for k in (0, 1, 3, 8):
        row_pos, neigh = s._sample_neighbours(frontier, k, rng)
        counts = np.bincount(row_pos, minlength=frontier.size)
        np.testing.assert_array_equal(counts, np.minimum(k, s.degree[frontier]))
        pairs = set(zip(frontier[row_pos].tolist(), neigh.tolist(), strict=True))
        assert len(pairs) == neigh.size  # without replacement
        assert all(A[a, b] != 0 for a, b in pairs)  # only true neighbours
    row_pos, neigh = s._sample_neighbours(frontier, -1, rng)
    np.testing.assert_array_equal(np.bincount(row_pos, minlength=40), s.degree[frontier])


def test_sampling_is_uniform_over_neighbours():
    n_leaves, k = 20, 5
    star = sp.csr_matrix(
        (np.ones(n_leaves), (np.zeros(n_leaves, int), np.arange(1, n_leaves + 1))),
        shape=(n_leaves + 1, n_leaves + 1),
    )
    s = NeighbourSampler(star)
    rng = np.random.default_rng(0)
    hits = np.zeros(n_leaves + 1)
    n_draws = 2000
    for _ in range(n_draws):
        sg = s.sample([0], 1, [k], rng)
        assert sg.n_nodes == k + 1
        hits[sg.nodes[1:]] += 1
    freq = hits[1:] / n_draws  # each leaf is kept with probability k / n_leaves
    sd = np.sqrt(0.25 * 0.75 / n_draws)
    assert np.all(np.abs(freq - k / n_leaves) < 5 * sd)


@pytest.mark.parametrize("fan_out", [[2], [3, 2], [1, 4, 2]])
def test_approx_bounds_and_structure(fan_out):
    A = _random_graph(400, 0.02, 3)
    s = NeighbourSampler(A)
    sym = symmetrize_graph(A)
    seeds = np.random.default_rng(1).choice(400, size=10, replace=False)
    sg = s.sample(seeds, len(fan_out), fan_out, np.random.default_rng(7))
    _check_subgraph(sg, A, seeds)
    # at most n_seeds * (1 + k0 + k0 k1 + ...) nodes
    bound, layer = len(seeds), len(seeds)
    for k in fan_out:
        layer *= k
        bound += layer
    assert sg.n_nodes <= bound
    # every added node is a neighbour of a node added before it (hop order)
    for i in range(sg.n_seeds, sg.n_nodes):
        assert sym[sg.nodes[i], sg.nodes[:i]].nnz > 0
    # the exact neighbourhood contains the approximate one
    exact = s.sample(seeds, len(fan_out))
    assert set(sg.nodes.tolist()) <= set(exact.nodes.tolist())


def test_approx_per_seed_fan_out_on_separated_seeds():
    # seeds far apart on a ring: their neighbourhoods are disjoint, so the per-node bound
    # is visible as a count per seed
    n, k = 1000, 2
    A = _ring(n, reach=3)
    seeds = np.arange(0, n, 100)
    sg = NeighbourSampler(A).sample(seeds, 1, [k], np.random.default_rng(0))
    added = sg.nodes[sg.n_seeds :]
    owner = np.rint(added / 100).astype(int) % (n // 100)
    np.testing.assert_array_equal(np.bincount(owner, minlength=len(seeds)), k)
    dist = np.abs((added - seeds[owner] + n // 2) % n - n // 2)
    assert np.all((dist >= 1) & (dist <= 3))


def test_large_fan_out_equals_exact():
    A = _random_graph(200, 0.02, 4)
    s = NeighbourSampler(A)
    seeds = [3, 50, 120]
    exact = s.sample(seeds, 2)
    for fan_out in ([1000, 1000], [-1, -1]):
        approx = s.sample(seeds, 2, fan_out, np.random.default_rng(0))
        np.testing.assert_array_equal(approx.nodes, exact.nodes)
        assert _edge_set(approx.nodes, approx.edge_index) == _edge_set(
            exact.nodes, exact.edge_index
        )


def test_approx_reproducible_and_varies_with_seed():
    A = _random_graph(500, 0.04, 6)
    s = NeighbourSampler(A)
    seeds = np.arange(0, 500, 25)
    a = s.sample(seeds, 2, [3, 2], np.random.default_rng(11))
    b = s.sample(seeds, 2, [3, 2], np.random.default_rng(11))
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.edge_index, b.edge_index)
    # rng=None is the fixed default generator, so repeated calls agree
    np.testing.assert_array_equal(
        s.sample(seeds, 2, [3, 2]).nodes, s.sample(seeds, 2, [3, 2]).nodes
    )
    others = [s.sample(seeds, 2, [3, 2], np.random.default_rng(r)).nodes for r in range(3)]
    assert any(set(o.tolist()) != set(a.nodes.tolist()) for o in others)


def test_asymmetric_weighted_input_is_symmetrised():
    # one-way edges 0->1, 1->2 with weights, a self-loop on 3, and 4 isolated
    A = sp.coo_matrix(([2.5, 0.3, 7.0], ([0, 1, 3], [1, 2, 3])), shape=(5, 5))
    s = NeighbourSampler(A)
    assert s.n_nodes == 5
    np.testing.assert_array_equal(s.degree, [1, 2, 1, 0, 0])
    assert s.degree.dtype == np.int64
    sg = s.sample([2], 2)
    np.testing.assert_array_equal(sg.nodes, [2, 1, 0])
    assert _edge_set(sg.nodes, sg.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    # dense input works too
    sg_dense = NeighbourSampler(A.toarray()).sample([2], 2)
    np.testing.assert_array_equal(sg_dense.nodes, sg.nodes)


def test_isolated_seeds():
    A = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 0])), shape=(6, 6))
    s = NeighbourSampler(A)
    for fan_out in (None, [2, 2]):
        sg = s.sample([4, 0, 5], 2, fan_out)
        np.testing.assert_array_equal(sg.nodes, [4, 0, 5, 1])
        assert _edge_set(sg.nodes, sg.edge_index) == {(0, 1), (1, 0)}
    only = s.sample([3], 2, [2, 2])
    np.testing.assert_array_equal(only.nodes, [3])
    assert only.edge_index.shape == (2, 0)


@pytest.mark.parametrize(
    ("seeds", "match"),
    [
        ([1, 2, 1], "unique"),
        ([0, 10], r"\[0, 10\)"),
        ([-1, 2], r"\[0, 10\)"),
        ([0.0, 1.0], "integer"),
        ([[0, 1]], "1-D"),
        (np.array([True, False]), "integer"),
    ],
)
def test_bad_seeds_raise(seeds, match):
    s = NeighbourSampler(_ring(10))
    with pytest.raises(ValueError, match=match):
        s.sample(seeds, 1)


def test_bad_fan_out_and_hops_raise():
    s = NeighbourSampler(_ring(10))
    with pytest.raises(ValueError, match="gcn_fan_out"):
        s.sample([0], 2, [3])
    with pytest.raises(ValueError, match="gcn_fan_out"):
        s.sample([0], 1, [3, 3])
    with pytest.raises(ValueError, match="gcn_fan_out"):
        s.sample([0], 1, [-5])
    with pytest.raises(ValueError, match="n_hops"):
        s.sample([0], -1)
    with pytest.raises(ValueError, match="square"):
        NeighbourSampler(sp.random(4, 5, density=0.5))


def _peak_bytes(sampler, seeds, fan_out):
    rng = np.random.default_rng(1)
    sampler.sample(seeds, 2, fan_out, np.random.default_rng(1))  # warm up lazy imports
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        sg = sampler.sample(seeds, 2, fan_out, rng)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return sg, peak


@pytest.mark.parametrize("fan_out", [[5, 5], None])
def test_work_is_flat_in_n(fan_out):
    # the same 64 seeds (all < 10^4, away from the wrap-around) on rings of growing N:
    # the sampled subgraph is identical and the memory per call does not grow with N
    # (an O(N) bool mask alone would add 90 kB between the two sizes, 1 MB at N = 10^6)
    seeds = 1000 + 100 * np.arange(64)
    results = {}
    for n in (10**4, 10**5):
        results[n] = _peak_bytes(NeighbourSampler(_ring(n)), seeds, fan_out)
    (sg_small, peak_small), (sg_big, peak_big) = results[10**4], results[10**5]
    assert sg_small.n_nodes == sg_big.n_nodes and sg_small.n_edges == sg_big.n_edges
    np.testing.assert_array_equal(sg_small.nodes, sg_big.nodes)
    np.testing.assert_array_equal(sg_small.edge_index, sg_big.edge_index)
    assert sg_small.n_nodes <= 64 * (1 + 6 + 36)
    # the returned edge_index alone is 16 bytes per directed edge (~68 kB here)
    for peak in (peak_small, peak_big):
        assert peak < 256_000, peak
    assert peak_big <= peak_small + 8_000, (peak_small, peak_big)
