"""Sample data: the bundled demo tissue (stain image, cell labels and their table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._element_layers import LayerData

__all__ = ["demo_tissue_sample"]


def demo_tissue_sample() -> list[LayerData]:
    """The demo tissue: image channels and the ``demo_cells`` labels layer.

    The labels layer's metadata holds the SpatialData object and its table (keys in
    :mod:`napari_topomics.plugin._keys`), so the fit widget finds the data to fit.
    """
    from ..datasets import demo
    from ._reader import sdata_to_layer_data

    return sdata_to_layer_data(demo(), source=None)
