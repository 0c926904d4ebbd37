"""Read a saved run's table fast: only the parts :class:`TopicResults` is built from.

A run table repeats its values for other readers (``X`` and ``obsm`` both hold the
proportions; ``obs`` holds the dominant topic, entropy and weights again). Reading the
whole table with ``anndata.read_zarr`` decodes all of it; at 10⁶ cells that is most of the
time. :func:`read_run_table` reads the obs names, the instance ids, the three ``obsm``
arrays, ``var`` and ``uns`` element by element, and returns them as :class:`RunTableParts`,
which :meth:`TopicResults.from_table` accepts like the AnnData table (building an AnnData
of 10⁶ cells would convert and check its obs names once more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError
from ._results_table import PROPORTIONS_KEY, SPATIAL_KEY, UNS_KEY, WEIGHTS_KEY

__all__ = ["RunTableParts", "read_run_table"]


@dataclass
class RunTableParts:
    """The parts of a run table a ``TopicResults`` is built from (AnnData's attribute names)."""

    obs: pd.DataFrame
    var: pd.DataFrame
    obsm: dict[str, np.ndarray]
    uns: dict
    X: np.ndarray | None = field(default=None)

    @property
    def obs_names(self) -> pd.Index:
        """The cell names."""
        return self.obs.index


def _read_elem(group, key: str):
    from anndata.io import read_elem

    return read_elem(group[key])


def read_run_table(table_path: str | Path) -> RunTableParts:
    """The parts of the run table at ``table_path`` that a ``TopicResults`` needs.

    Raises
    ------
    TopomicsInputError
        When the folder is not a readable topomics run table.
    """
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
    return RunTableParts(obs=obs, var=var, obsm=obsm, uns=uns)
