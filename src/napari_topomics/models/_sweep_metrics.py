"""What a topic sweep measures on each fit, and the stability between restarts."""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Any

import numpy as np

#: θ above this in some cell counts a topic as used.
USED_THRESHOLD = 0.5
#: Top features per topic and modality of the topic diversity (Dieng et al. 2020).
DIVERSITY_TOP = 25
#: Top contrasts per topic whose features the stability correlates over.
STABILITY_TOP = 25


def topic_contrasts(model) -> np.ndarray:
    """``(features, K)`` log topic profiles centred over the topics, modalities stacked.

    A topic's φ is mostly the feature baseline that every topic shares; what tells topics
    apart is where a topic's log φ departs from the other topics'. Those contrasts are what
    the stability compares (raw φ correlates above 0.98 between any restarts, at any K).
    Gaussian modalities enter centred but not logged.
    """
    blocks = []
    for m in range(model.n_modalities):
        phi = model.get_feature_topic_dist(m).to_numpy(dtype=np.float64)
        if model.module.config.is_count(m):
            phi = np.log(np.maximum(phi, 1e-12))
        blocks.append(phi - phi.mean(axis=1, keepdims=True))
    return np.vstack(blocks)


def _top_rows(contrasts: np.ndarray, n_top: int) -> np.ndarray:
    """Sorted features among the ``n_top`` highest contrasts of some topic."""
    top = min(n_top, contrasts.shape[0])
    return np.unique(np.argsort(-contrasts, axis=0)[:top].ravel())


def matched_correlations(a: np.ndarray, b: np.ndarray, n_top: int = STABILITY_TOP) -> np.ndarray:
    """Correlations of the topics of ``b`` with their best one-to-one match in ``a``.

    Over the features among the ``n_top`` highest contrasts of some topic in either fit:
    the rest are noise around the shared baseline and would dilute every correlation.
    """
    from ..metrics import match_topics, topic_correlation_matrix

    rows = np.union1d(_top_rows(a, n_top), _top_rows(b, n_top))
    a, b = a[rows], b[rows]
    corr = topic_correlation_matrix(a, b)
    matching = match_topics(a, b)
    ok = matching >= 0
    return corr[np.flatnonzero(ok), matching[ok]]


def stability(contrasts: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per restart, the mean (and the minimum) matched correlation with the other restarts.

    Each pair of restarts of one K is matched by :func:`napari_topomics.metrics.match_topics`
    on :func:`topic_contrasts` (see :func:`matched_correlations`); restart ``i`` scores the
    mean over its pairs of the pair's mean (and minimum) matched correlation. NaN for a
    single restart.
    """
    n = len(contrasts)
    means: list[list[float]] = [[] for _ in range(n)]
    mins: list[list[float]] = [[] for _ in range(n)]
    for i, j in combinations(range(n), 2):
        r = matched_correlations(contrasts[i], contrasts[j])
        for k in (i, j):
            means[k].append(float(r.mean()))
            mins[k].append(float(r.min()))
    mean = [float(np.mean(v)) if v else math.nan for v in means]
    low = [float(np.mean(v)) if v else math.nan for v in mins]
    return mean, low


def topic_redundancy(contrasts: np.ndarray, n_top: int = STABILITY_TOP) -> float:
    """The largest correlation between two topics of one fit: how near a duplicate its
    closest pair is.

    Over the union of each topic's ``n_top`` highest :func:`topic_contrasts`. Distinct
    topics correlate negatively there (each one's top features are the others' baseline);
    a real topic split in two gives a pair that shares its features, correlated well above
    0. A flat topic correlates 0. NaN for fewer than two topics.
    """
    from ..metrics import topic_correlation_matrix

    contrasts = np.asarray(contrasts, dtype=np.float64)
    if contrasts.shape[1] < 2:
        return math.nan
    top = contrasts[_top_rows(contrasts, n_top)]
    corr = topic_correlation_matrix(top, top)  # a flat topic correlates 0 with every other
    np.fill_diagonal(corr, -np.inf)
    return float(corr.max())


def topic_diversity(model, n_top: int = DIVERSITY_TOP) -> float:
    """Fraction of distinct features among every topic's top features, averaged over modalities.

    Per modality, the top ``min(n_top, F_m // 2)`` features of each topic by φ; 1 means no
    two topics share a top feature, ``1/K`` that every topic has the same ones.
    """
    values = []
    for m in range(model.n_modalities):
        phi = model.get_feature_topic_dist(m).to_numpy()
        top = min(n_top, phi.shape[0] // 2)
        if top < 1:
            continue
        best = np.argsort(-phi, axis=0)[:top]
        values.append(len(np.unique(best)) / best.size)
    return float(np.mean(values)) if values else math.nan


def topics_used(theta: np.ndarray, threshold: float = USED_THRESHOLD) -> float:
    """Fraction of topics whose proportion exceeds ``threshold`` in at least one cell."""
    return float((np.asarray(theta).max(axis=0) > threshold).mean())


def mean_morans_i(model) -> float:
    """Mean Moran's I of the topics over the fit cells' graph; NaN without coordinates."""
    try:
        values = model.get_spatial_coherence()
    except (ValueError, KeyError):
        return math.nan
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def heldout_perplexity(model, query) -> dict[str, float]:
    """Overall and per-modality perplexity of the held-out cells (``perplexity_<modality>``).

    The model's own plug-in perplexity (:meth:`get_perplexity_per_modality`) on a query
    set up like its training data; lower is better. Gaussian modalities give NaN.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Gaussian modalities: nan, said below
        per = model.get_perplexity_per_modality(adata=query)
        total = model.get_perplexity(adata=query)
    out: dict[str, Any] = {"perplexity": float(total)}
    out.update({f"perplexity_{name}": float(v) for name, v in per.items()})
    return out


def fit_metrics(model, query) -> dict[str, float]:
    """Every per-fit column of the sweep's frame except the stability."""
    theta = model.get_cell_topic_dist()
    return {
        **heldout_perplexity(model, query),
        "diversity": topic_diversity(model),
        "topics_used": topics_used(theta),
        "morans_i": mean_morans_i(model),
    }
