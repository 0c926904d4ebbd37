"""``open_lazy`` on a SpatialData store: the table's matrix stays on disk (issue 18)."""

# ruff: noqa: F811  (pytest fixtures are imported from _store_fixtures and used as arguments)
from __future__ import annotations

import numpy as np
import pytest
from _store_fixtures import (  # noqa: F401  (fixtures)
    N_CELLS,
    N_GENES,
    N_PROTS,
    file_hashes,
    store,
    store_template,
    tissue,
)

from napari_topomics.data._lazy import is_lazy_matrix
from napari_topomics.io import TopomicsInputError, open_lazy


def test_a_store_table_opens_lazily_and_a_model_trains_on_it(store, tissue):
    from napari_topomics.models import MultimodalAmortizedLDA

    before = file_hashes(store)
    adata = open_lazy(store)
    assert is_lazy_matrix(adata.X) and adata.shape == tissue.tables["table"].shape
    np.testing.assert_array_equal(np.asarray(adata.X[2:5]),
                                  np.asarray(tissue.tables["table"].X[2:5]))
    assert list(adata.obs["cell_id"]) == list(tissue.tables["table"].obs["cell_id"])
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=["rna", "protein"], n_inputs_modalities=[N_GENES, N_PROTS],
        n_topics=2, n_hidden=8,
    )
    model.train(max_epochs=2, batch_size=16, enable_progress_bar=False, accelerator="cpu")
    theta = model.get_cell_topic_dist()
    assert theta.shape == (N_CELLS, 2)
    np.testing.assert_allclose(theta.sum(1), 1.0, rtol=1e-5)
    assert is_lazy_matrix(model.adata.X)
    assert file_hashes(store) == before  # reading lazily never writes


def test_a_store_without_that_table_is_named(store):
    with pytest.raises(TopomicsInputError, match="no table 'counts'.*'table'"):
        open_lazy(store, table="counts")
