"""Ground-truth scoring of learned topics: matching, θ correlation, marker precision."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import average_precision_score

__all__ = [
    "marker_average_precision",
    "match_topics",
    "matched_theta_correlation",
    "matched_theta_correlations",
    "matched_topic_correlation",
    "top_marker_fraction",
    "topic_correlation_matrix",
]

MarkerScore = Literal["specificity", "weight"]


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    norm = np.linalg.norm(x, axis=0)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def topic_correlation_matrix(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson correlations between the columns of ``truth`` and ``learned``.

    Parameters
    ----------
    learned, truth
        ``(R, K_l)`` and ``(R, K_t)`` arrays whose columns are topics and rows are cells
        (θ) or features (φ). Pandas objects are accepted.

    Returns
    -------
    ``(K_t, K_l)`` correlations; a constant column correlates 0 with everything.
    """
    learned, truth = np.asarray(learned), np.asarray(truth)
    if learned.shape[0] != truth.shape[0]:
        raise ValueError(f"row counts differ: learned {learned.shape}, truth {truth.shape}")
    return _standardise(truth).T @ _standardise(learned)


def match_topics(learned: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Match learned to true topics (Hungarian assignment maximising total correlation).

    Parameters
    ----------
    learned, truth
        ``(R, K_l)`` and ``(R, K_t)``, topics in columns (see
        :func:`topic_correlation_matrix`).

    Returns
    -------
    ``(K_t,)`` int array: the learned column matched to each true topic, or -1 for true
    topics left unmatched when ``K_l < K_t``.
    """
    corr = topic_correlation_matrix(learned, truth)
    rows, cols = linear_sum_assignment(corr, maximize=True)
    matching = np.full(corr.shape[0], -1, dtype=np.int64)
    matching[rows] = cols
    return matching


def matched_theta_correlations(
    learned_theta: np.ndarray, true_theta: np.ndarray, matching: np.ndarray | None = None
) -> np.ndarray:
    """Per true topic, the Pearson r across cells with its matched learned column.

    ``matching`` defaults to :func:`match_topics` on θ. Unmatched true topics score 0.
    """
    if matching is None:
        matching = match_topics(learned_theta, true_theta)
    corr = topic_correlation_matrix(learned_theta, true_theta)
    matching = np.asarray(matching)
    out = np.zeros(corr.shape[0])
    ok = matching >= 0
    out[ok] = corr[np.flatnonzero(ok), matching[ok]]
    return out


def matched_theta_correlation(
    learned_theta: np.ndarray, true_theta: np.ndarray, matching: np.ndarray | None = None
) -> float:
    """Mean of :func:`matched_theta_correlations` over the true topics."""
    return float(matched_theta_correlations(learned_theta, true_theta, matching).mean())


def matched_topic_correlation(
    learned_phi: np.ndarray, true_phi: np.ndarray, matching: np.ndarray | None = None
) -> float:
    """Mean Pearson r across features between matched topic profiles.

    Parameters
    ----------
    learned_phi
        ``(F_m, K_l)`` learned topic-feature matrix (the model's orientation).
    true_phi
        ``(K_t, F_m)`` planted profiles (``SimulationTruth.topic_feature[m]``).
    matching
        ``(K_t,)`` from :func:`match_topics`; defaults to matching on φ itself.
    """
    true_t = np.asarray(true_phi).T
    return matched_theta_correlation(np.asarray(learned_phi), true_t, matching)


def _marker_mask(markers: np.ndarray, n_features: int, fold: float = 2.0) -> np.ndarray:
    """``(K_t, F)`` bool mask from indices, a mask, or planted profiles."""
    markers = np.asarray(markers)
    if markers.dtype == bool:
        mask = markers
    elif np.issubdtype(markers.dtype, np.integer):
        if markers.size and (markers.min() < 0 or markers.max() >= n_features):
            raise ValueError(f"marker indices out of range for {n_features} features")
        mask = np.zeros((markers.shape[0], n_features), dtype=bool)
        mask[np.arange(markers.shape[0])[:, None], markers] = True
    else:  # planted profiles: features at least `fold` times their mean over topics
        mean = markers.mean(axis=0, keepdims=True)
        mask = markers >= fold * mean
    if mask.shape[1] != n_features:
        raise ValueError(f"markers cover {mask.shape[1]} features, learned_phi has {n_features}")
    return mask


def _feature_scores(learned_phi: np.ndarray, score: MarkerScore) -> np.ndarray:
    """``(F, K_l)`` ranking scores: raw weights or weight relative to the topic mean."""
    phi = np.asarray(learned_phi, dtype=np.float64)
    if score == "weight":
        return phi
    if score != "specificity":
        raise ValueError(f"score must be 'specificity' or 'weight', got {score!r}")
    eps = 0.1 / phi.shape[0]  # a tenth of the uniform weight: damps near-zero features
    return (phi + eps) / (phi.mean(axis=1, keepdims=True) + eps)


def _resolve_matching(
    scores: np.ndarray, mask: np.ndarray, matching: np.ndarray | None
) -> np.ndarray:
    if matching is None:
        return match_topics(scores, mask.T.astype(np.float64))
    matching = np.asarray(matching)
    if matching.shape != (mask.shape[0],):
        raise ValueError(f"matching must have shape ({mask.shape[0]},), got {matching.shape}")
    return matching


def marker_average_precision(
    learned_phi: np.ndarray,
    markers: np.ndarray,
    matching: np.ndarray | None = None,
    *,
    score: MarkerScore = "specificity",
) -> float:
    """Mean over true topics of the average precision of the planted markers.

    For true topic ``k``, all features are ranked by the score of its matched learned
    topic and scored against "is a planted marker of ``k``"
    (:func:`sklearn.metrics.average_precision_score`).

    The default ``score="specificity"`` ranks by ``(φ_fk + ε) / (mean_j φ_fj + ε)`` with
    ``ε = 0.1 / F``: a topic's weight relative to its mean over all learned topics. Raw
    weights (``score="weight"``) rank highly expressed shared features (housekeeping
    genes, ubiquitous peaks) above true markers, so even a perfect model scores below 1;
    specificity gives a correct model ~1 while a random or collapsed model stays near
    the marker prevalence. ``ε`` keeps features that no topic uses from ranking high on
    a ratio of two tiny numbers.

    Parameters
    ----------
    learned_phi
        ``(F_m, K_l)`` learned topic-feature matrix.
    markers
        ``(K_t, n)`` int marker indices (``SimulationTruth.markers[m]``), a ``(K_t, F_m)``
        bool mask, or ``(K_t, F_m)`` float planted profiles (markers are then features
        at least twice their mean over topics).
    matching
        ``(K_t,)`` learned column per true topic (e.g. :func:`match_topics` on θ);
        defaults to matching the scores to the marker masks. Unmatched topics score 0.
    score
        ``"specificity"`` (default) or ``"weight"``.
    """
    scores = _feature_scores(learned_phi, score)
    mask = _marker_mask(markers, scores.shape[0])
    matching = _resolve_matching(scores, mask, matching)
    ap = np.zeros(mask.shape[0])
    for k, j in enumerate(matching):
        if j >= 0 and mask[k].any():
            ap[k] = average_precision_score(mask[k], scores[:, j])
    return float(ap.mean())


def top_marker_fraction(
    learned_phi: np.ndarray,
    markers: np.ndarray,
    matching: np.ndarray | None = None,
    *,
    n_top: int | None = None,
    score: MarkerScore = "specificity",
) -> float:
    """Mean over true topics of the share of planted markers among the top features.

    For true topic ``k``, take the ``n_top`` (default: its number of markers) highest
    scoring features of the matched learned topic and count the planted markers of
    ``k`` among them. Arguments as in :func:`marker_average_precision`.
    """
    scores = _feature_scores(learned_phi, score)
    mask = _marker_mask(markers, scores.shape[0])
    matching = _resolve_matching(scores, mask, matching)
    frac = np.zeros(mask.shape[0])
    for k, j in enumerate(matching):
        n = int(mask[k].sum()) if n_top is None else int(n_top)
        if j >= 0 and n > 0:
            top = np.argsort(-scores[:, j], kind="stable")[:n]
            frac[k] = mask[k, top].mean()
    return float(frac.mean())
