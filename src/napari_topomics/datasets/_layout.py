"""Spatial layout, domains and spatially smooth topic mixtures for the simulator."""

from __future__ import annotations

from typing import Literal

import numpy as np

SpatialLayout = Literal["grid", "ring"]

_N_CANDIDATES = 4096  # points considered when spreading the domain centres


def _farthest_points(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``n`` well-spread rows of ``points`` by farthest-point sampling."""
    chosen = [int(rng.integers(points.shape[0]))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(1, n):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return points[chosen]


def _grid_layout(
    n_cells: int, n_domains: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Jittered square lattice; domains are the Voronoi cells of spread-out centres."""
    n_cols = int(np.ceil(np.sqrt(n_cells)))
    idx = np.arange(n_cells)
    coords = np.column_stack([idx % n_cols, idx // n_cols]).astype(np.float64)
    coords += rng.uniform(-0.35, 0.35, size=coords.shape)
    coords = coords[rng.permutation(n_cells)]  # cell order carries no spatial information
    cand = coords[rng.choice(n_cells, size=min(n_cells, _N_CANDIDATES), replace=False)]
    centres = _farthest_points(cand, n_domains, rng)
    dist = np.linalg.norm(coords[:, None, :] - centres[None, :, :], axis=2)
    scale = float(np.sqrt(n_cells / n_domains))  # typical domain diameter
    return coords, dist, scale


def _ring_layout(
    n_cells: int, n_domains: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Annulus of unit cell density; domains are arcs of equal length."""
    radius = np.sqrt(5.0 * n_cells / (2.0 * np.pi))  # annulus width radius / 5
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n_cells)
    r = radius + rng.uniform(-0.1 * radius, 0.1 * radius, size=n_cells)
    coords = np.column_stack([r * np.cos(angle), r * np.sin(angle)])
    offset = rng.uniform(0.0, 2.0 * np.pi)
    centres = offset + 2.0 * np.pi * (np.arange(n_domains) + 0.5) / n_domains
    gap = np.abs(angle[:, None] - centres[None, :]) % (2.0 * np.pi)
    dist = radius * np.minimum(gap, 2.0 * np.pi - gap)  # arc length to each centre
    scale = float(2.0 * np.pi * radius / n_domains)
    return coords, dist, scale


def make_layout(
    n_cells: int,
    n_domains: int,
    layout: SpatialLayout,
    boundary_width: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place cells in 2-D and assign them to spatially contiguous domains.

    Parameters
    ----------
    n_cells, n_domains
        Numbers of cells and domains.
    layout
        ``"grid"`` (a filled square, Voronoi domains) or ``"ring"`` (an annulus, arc domains).
    boundary_width
        Width of the soft transition between neighbouring domains, as a fraction of the
        typical domain size; 0 gives hard boundaries.
    rng
        Random generator.

    Returns
    -------
    coords
        ``(n_cells, 2)`` coordinates, about one cell per unit area.
    weights
        ``(n_cells, n_domains)`` soft domain memberships (rows sum to 1), smooth in space.
    domain
        ``(n_cells,)`` hard domain label (the nearest centre), contiguous in space.
    """
    if layout == "grid":
        coords, dist, scale = _grid_layout(n_cells, n_domains, rng)
    elif layout == "ring":
        coords, dist, scale = _ring_layout(n_cells, n_domains, rng)
    else:
        raise ValueError(f"spatial_layout must be 'grid' or 'ring', got {layout!r}")
    domain = np.argmin(dist, axis=1)
    excess = dist - dist[np.arange(n_cells), domain][:, None]
    if boundary_width > 0:
        weights = np.exp(-excess / (boundary_width * scale))
        weights /= weights.sum(axis=1, keepdims=True)
    else:
        weights = np.zeros_like(dist)
        weights[np.arange(n_cells), domain] = 1.0
    return coords, weights, domain


DomainMixing = Literal["dominant", "shared"]


def domain_topic_means(
    n_domains: int,
    n_topics: int,
    domain_strength: float,
    rng: np.random.Generator,
    mixing: DomainMixing = "dominant",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean topic mixture of each domain.

    ``"dominant"``: one dominant topic plus a uniform floor; domain ``d`` is dominated by
    topic ``perm[d % n_topics]`` for a random permutation, so with
    ``n_domains == n_topics`` every topic dominates exactly one domain.
    ``"shared"``: every domain's mean is its own draw from ``Dirichlet(1)`` over all topics,
    so topics are shared across domains and no domain is one topic; ``domain_strength``
    blends it with the uniform mixture as above.

    Returns
    -------
    means
        ``(n_domains, n_topics)``, rows on the simplex.
    dominant
        ``(n_domains,)`` index of each domain's largest topic.
    """
    if mixing == "dominant":
        perm = rng.permutation(n_topics)
        dominant = perm[np.arange(n_domains) % n_topics]
        means = np.full((n_domains, n_topics), (1.0 - domain_strength) / n_topics)
        means[np.arange(n_domains), dominant] += domain_strength
        return means, dominant
    if mixing != "shared":
        raise ValueError(f"domain_mixing must be 'dominant' or 'shared', got {mixing!r}")
    own = rng.dirichlet(np.ones(n_topics), size=n_domains)
    means = domain_strength * own + (1.0 - domain_strength) / n_topics
    return means, means.argmax(axis=1)


def sample_theta(
    weights: np.ndarray, means: np.ndarray, dirichlet_alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``θ_n ~ Dirichlet(α K m(x_n))`` around the spatially smooth mean ``m = W M``.

    With a uniform mean each topic gets concentration ``dirichlet_alpha``.
    """
    n_topics = means.shape[1]
    conc = dirichlet_alpha * n_topics * (weights @ means)
    gam = rng.standard_gamma(conc)
    gam = np.maximum(gam, 1e-300)  # guards rows that underflow to all zeros
    return gam / gam.sum(axis=1, keepdims=True)
