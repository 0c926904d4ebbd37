"""Models on a registered matrix left on disk (``open_lazy``, backed AnnData; issue 18)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi

from napari_topomics.data._lazy import is_lazy_matrix
from napari_topomics.io import open_lazy
from napari_topomics.models import MultimodalAmortizedLDA

MODALITIES = ("rna", "protein", "atac")
TRAIN = {"max_epochs": 3, "batch_size": 64, "enable_progress_bar": False,
         "accelerator": "cpu"}


@pytest.fixture(scope="module")
def tissue_file(tmp_path_factory):
    from napari_topomics.datasets import simulate_tissue

    mdata, _ = simulate_tissue(n_cells=240, n_topics=4, n_genes=60, n_proteins=8,
                               n_peaks=40, seed=3)
    mods = [mdata.mod[m] for m in MODALITIES]
    X = sp.hstack([sp.csr_matrix(a.X) for a in mods], format="csr", dtype=np.float32)
    path = tmp_path_factory.mktemp("lazy") / "tissue.h5ad"
    ad.AnnData(X=X, obs=pd.DataFrame(index=mods[0].obs_names),
               var=pd.DataFrame(index=np.concatenate([a.var_names for a in mods])),
               obsm={"spatial": np.asarray(mods[0].obsm["spatial"])}).write_h5ad(path)
    return path, [a.n_vars for a in mods]


def _fit(adata, counts, **model_kwargs):
    scvi.settings.seed = 0
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=list(MODALITIES), n_inputs_modalities=counts, n_topics=4,
        n_hidden=16, likelihoods=["nb", "nb", "bernoulli"], **model_kwargs,
    )
    model.train(**TRAIN)
    return model


@pytest.mark.parametrize("spatial", [{}, {"spatial_keys": "spatial", "spatial_mode": "gcn"}],
                         ids=["plain", "gcn"])
def test_a_lazy_matrix_trains_the_same_model_as_the_matrix_in_memory(tissue_file, spatial):
    path, counts = tissue_file
    in_memory = _fit(ad.read_h5ad(path), counts, **spatial)
    lazy = _fit(open_lazy(path), counts, **spatial)
    assert is_lazy_matrix(lazy.adata.X)  # the matrix went back to disk after training
    share = lazy.training_share
    assert (share.start, share.stop, share.held.size) == (0, 240, 240)
    np.testing.assert_allclose(lazy.get_cell_topic_dist(), in_memory.get_cell_topic_dist(),
                               atol=1e-5)
    assert in_memory.training_share is None


def test_a_backed_anndata_trains_reading_its_minibatches_from_the_file(tissue_file):
    path, counts = tissue_file
    in_memory = _fit(ad.read_h5ad(path), counts)
    backed = _fit(ad.read_h5ad(path, backed="r"), counts)
    assert backed.adata.isbacked and backed.training_share is None
    # scvi sorts a backed minibatch's cells, so the steps' sums differ in rounding only
    a, b = backed.get_cell_topic_dist(), in_memory.get_cell_topic_dist()
    assert a.shape == b.shape
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(a - b).max() < 0.15


def test_sgc_on_a_lazy_matrix_says_what_to_do(tissue_file):
    path, counts = tissue_file
    with pytest.raises(ValueError, match="spatial_mode='sgc'.*spatial_mode='gcn'"):
        MultimodalAmortizedLDA.from_data(
            open_lazy(path), modalities=list(MODALITIES), n_inputs_modalities=counts,
            n_topics=4, spatial_keys="spatial", spatial_mode="sgc",
        )
