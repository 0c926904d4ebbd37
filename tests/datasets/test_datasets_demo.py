"""The generated demo tissue."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from napari_topomics.datasets import demo_tissue


def test_demo_tissue_is_small_deterministic_and_annotated():
    a = demo_tissue(seed=0)
    b = demo_tissue(seed=0)
    assert a.n_obs == 1500
    assert {m: ad.n_vars for m, ad in a.mod.items()} == {"rna": 300, "protein": 20, "atac": 400}
    for mod, ad in a.mod.items():
        assert sp.issparse(ad.X) and ad.X.dtype == np.float32
        assert (ad.X != b.mod[mod].X).nnz == 0
        planted = ad.var["planted_topic"].to_numpy()
        assert set(np.unique(planted)) == {-1, 0, 1, 2, 3, 4, 5}
    assert a.obsm["theta_true"].shape == (1500, 6)
    assert a.obsm["spatial"].shape == (1500, 2)
    assert a.obs["domain"].nunique() == 6
    c = demo_tissue(seed=1)
    assert (a.mod["rna"].X != c.mod["rna"].X).nnz > 0
