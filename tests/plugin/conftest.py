"""Shared fixtures of the napari plugin tests (run under Xvfb: ``xvfb-run -a pytest``).

``torch`` is imported before anything imports Qt: importing it after a Qt binding breaks
here. Without napari or pytest-qt installed the plugin tests are not collected.
"""

import torch  # noqa: I001  (must precede every Qt import)

import importlib.util
import logging
import warnings
from pathlib import Path

import pytest

torch.set_num_threads(1)
for _name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "spatialdata",
              "ome_zarr"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_NEEDED = ("napari", "pytestqt", "qtpy")
if any(importlib.util.find_spec(name) is None for name in _NEEDED):
    collect_ignore_glob = ["test_*.py"]

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TINY_CELLS = 200
TINY_TOPICS = 4


@pytest.fixture(scope="session")
def tiny_demo():
    """The demo tissue with 200 cells (a SpatialData object; do not modify it)."""
    from napari_topomics.datasets import demo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return demo(n_cells=TINY_CELLS, seed=0)


@pytest.fixture(scope="session")
def tiny_fit(tiny_demo):
    """(model, results) of a 4-topic model trained 2 epochs on :func:`tiny_demo`."""
    from napari_topomics.io._inputs import load_tissue_input
    from napari_topomics.io._results import TopicResults
    from napari_topomics.models import MultimodalAmortizedLDA

    tissue = load_tissue_input(tiny_demo, "table")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MultimodalAmortizedLDA.from_data(tissue.data, n_topics=TINY_TOPICS)
        model.train(max_epochs=2, batch_size=64, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    results = TopicResults.from_model(
        model, run_name="tiny", n_top=5, region=tissue.element.name,
        region_key=tissue.element.region_key, instance_key=tissue.element.instance_key,
        instance_ids=tissue.instance_ids, coordinates=tissue.coordinates,
        table=tissue.table, seed=0,
    )
    return model, results


@pytest.fixture
def tiny_results(tiny_fit):
    """The :func:`tiny_fit` run's TopicResults."""
    return tiny_fit[1]
