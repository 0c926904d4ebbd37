"""Ground-truth scoring and spatial coherence metrics."""

from ._coherence import knn_batch_mixing, morans_i
from ._oracle import oracle_theta, oracle_theta_correlation
from ._scoring import (
    marker_average_precision,
    match_topics,
    matched_theta_correlation,
    matched_theta_correlations,
    matched_topic_correlation,
    top_marker_fraction,
    topic_correlation_matrix,
)

__all__ = [
    "knn_batch_mixing",
    "marker_average_precision",
    "match_topics",
    "matched_theta_correlation",
    "matched_theta_correlations",
    "matched_topic_correlation",
    "morans_i",
    "oracle_theta",
    "oracle_theta_correlation",
    "top_marker_fraction",
    "topic_correlation_matrix",
]
