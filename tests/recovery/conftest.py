"""Shared settings of the statistical ground-truth tests (spec §7).

Every test here trains small seeded models on :func:`napari_topomics.datasets.simulate_tissue`
data with the model's default settings (only ``max_epochs`` and ``batch_size`` are chosen)
and compares the result with the planted truth. Thresholds were calibrated once on the
simulator (several training seeds) and pinned with a margin; each test module documents the
observed values next to its thresholds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scvi
import torch


def _quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


_quiet()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Train with one intra-op thread.

    The models are tiny, so a second thread buys nothing, while oversubscribed cores (CI
    runners, parallel jobs) make torch's thread pool many times slower. One thread also
    makes the floating-point results independent of the machine's core count.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _fit(data, *, max_epochs: int, batch_size: int | None, seed: int = 0, **model_kwargs):
    """Build a model with ``from_data`` and train it with the default training settings."""
    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    model = MultimodalAmortizedLDA.from_data(data, **model_kwargs)
    model.train(max_epochs=max_epochs, batch_size=batch_size, enable_progress_bar=False)
    return model


@pytest.fixture(scope="session")
def fit():
    """``fit(data, max_epochs=..., batch_size=..., seed=0, **model_kwargs)`` → trained model."""
    return _fit


def _truth_rows(obs_names, sim_obs_names) -> np.ndarray:
    """Rows of the simulator's truth arrays for the model's cells (aligned by obs_names)."""
    rows = np.asarray(sim_obs_names.get_indexer(obs_names))
    assert (rows >= 0).all(), "model cells missing from the simulation"
    return rows


@pytest.fixture(scope="session")
def truth_rows():
    """``truth_rows(model_obs_names, simulated_obs_names)`` → positions into the truth."""
    return _truth_rows
