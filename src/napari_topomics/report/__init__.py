"""Report figures and an HTML/Markdown index for a topic-model run; matplotlib only, no Qt."""

from ._figures import (
    plot_dominant_topic,
    plot_elbo,
    plot_modality_weights,
    plot_spatial_coherence,
    plot_top_features,
    plot_topic_maps,
)
from ._index import write_report
from ._paint import image_raster, labels_raster, paint_cells

__all__ = [
    "image_raster",
    "labels_raster",
    "paint_cells",
    "plot_dominant_topic",
    "plot_elbo",
    "plot_modality_weights",
    "plot_spatial_coherence",
    "plot_top_features",
    "plot_topic_maps",
    "write_report",
]
