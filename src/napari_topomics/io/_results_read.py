"""Read a saved run's table fast: only the parts :class:`TopicResults` is built from.

A run table repeats its values for other readers (``X`` and ``obsm`` both hold the
proportions; ``obs`` holds the dominant topic, entropy and weights again). Reading the
whole table with ``anndata.read_zarr`` decodes all of it; at 10⁶ cells that is most of the
time. :func:`read_run_table` reads the obs names, the instance ids, the three ``obsm``
arrays, ``var`` and ``uns`` element by element, and returns a small AnnData that
:meth:`TopicResults.from_table` accepts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError
from ._results_table import PROPORTIONS_KEY, SPATIAL_KEY, UNS_KEY, WEIGHTS_KEY

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["read_run_table"]


def _read_elem(group, key: str):
    from anndata.io import read_elem

    return read_elem(group[key])


def read_run_table(table_path: str | Path) -> AnnData:
    """The parts of the run table at ``table_path`` that a ``TopicResults`` needs.

    Raises
    ------
    TopomicsInputError
        When the folder is not a readable topomics run table.
    """
    import anndata as ad
    import zarr

    try:
        group = zarr.open_group(str(table_path), mode="r")
        uns = _read_elem(group, "uns")
        obs_group = group["obs"]
        index_key = obs_group.attrs.get("_index", "_index")
        names = np.asarray(_read_elem(obs_group, index_key))
        run_uns = uns.get(UNS_KEY, {})
        attrs = uns.get("spatialdata_attrs") or {}
        instance_key = str(attrs.get("instance_key") or run_uns.get("instance_key",
                                                                     "instance_id"))
        obs = pd.DataFrame(index=pd.Index(names.astype(object), dtype=object))
        if instance_key in obs_group:
            obs[instance_key] = np.asarray(_read_elem(obs_group, instance_key))
        obsm_group = group["obsm"]
        obsm = {key: np.asarray(_read_elem(obsm_group, key))
                for key in (PROPORTIONS_KEY, WEIGHTS_KEY, SPATIAL_KEY) if key in obsm_group}
        if PROPORTIONS_KEY not in obsm:
            obsm[PROPORTIONS_KEY] = np.asarray(_read_elem(group, "X"))
        var = _read_elem(group, "var")
    except (KeyError, OSError, ValueError, TypeError) as err:
        raise TopomicsInputError(
            f"Could not read the run table {str(table_path)!r}: {type(err).__name__}: {err}"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.AnnData(obs=obs, var=var, obsm=obsm, uns=uns)
