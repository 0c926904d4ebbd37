"""The KL warm-up schedule of spec §3.12 is the one logged and applied.

For the 0-based epoch e, ``β_KL(e) = kl_warmup_min + (kl_weight − kl_warmup_min) · e / E_w``
while ``e < E_w = max(1, floor(kl_warmup_fraction · max_epochs))``, then ``kl_weight``. A
fraction ≤ 0 turns warm-up off. The β_KL of an epoch must be logged as ``kl_weight``, be the
``kl_weight`` passed to the Pyro model on every training and validation step of that epoch,
and scale the model's latent sites (the published design let scvi's own 400-epoch ramp
override the model's schedule).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scvi
from pyro import poutine

from napari_topomics.datasets import simulate_tissue
from napari_topomics.models._training_plan import kl_schedule

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MAX_EPOCHS, KL_WEIGHT, FRACTION, KL_MIN = 8, 2.0, 0.5, 0.01
N_CELLS, BATCH_SIZE = 100, 30  # 90 training cells: 3 steps per epoch


def expected_beta(epoch, max_epochs, kl_weight, fraction, kl_min):
    """Spec §3.12, written out independently of the implementation."""
    if fraction <= 0:
        return kl_weight
    n_warmup = max(1, math.floor(fraction * max_epochs))
    if epoch >= n_warmup:
        return kl_weight
    return kl_min + (kl_weight - kl_min) * epoch / n_warmup


EXPECTED = [0.01, 0.5075, 1.005, 1.5025, 2.0, 2.0, 2.0, 2.0]  # E_w = 4


def test_expected_schedule_values():
    got = [expected_beta(e, MAX_EPOCHS, KL_WEIGHT, FRACTION, KL_MIN) for e in range(MAX_EPOCHS)]
    np.testing.assert_allclose(got, EXPECTED, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("max_epochs", "kl_weight", "fraction", "kl_min"),
    [
        (MAX_EPOCHS, KL_WEIGHT, FRACTION, KL_MIN),
        (10, 1.0, 0.25, 0.01),  # defaults: E_w = 2
        (1000, 1.0, 0.25, 0.01),  # E_w = 250
        (3, 1.0, 0.1, 0.01),  # floor(0.3) = 0 → E_w = 1
        (7, 0.5, 0.5, 0.1),  # E_w = floor(3.5) = 3
        (5, 3.0, 0.0, 0.01),  # warm-up off
        (5, 3.0, -1.0, 0.01),  # warm-up off
        (4, 0.0, 0.5, 0.01),  # ramps down to a zero KL weight
        (6, 1.0, 2.0, 0.2),  # E_w = 12 > max_epochs: never reaches kl_weight
    ],
)
def test_kl_schedule_unit_values(max_epochs, kl_weight, fraction, kl_min):
    for epoch in range(max_epochs + 2):
        want = expected_beta(epoch, max_epochs, kl_weight, fraction, kl_min)
        got = kl_schedule(epoch, max_epochs, kl_weight, fraction, kl_min)
        assert got == pytest.approx(want, abs=1e-12), (epoch, got, want)


@pytest.fixture(scope="module")
def spied_training():
    """Train a tiny model while recording the plan, every model call and its site scales."""
    from napari_topomics.models import MultimodalAmortizedLDA

    mdata, _ = simulate_tissue(
        n_cells=N_CELLS, n_topics=3, n_genes=30, n_proteins=0, n_peaks=0, seed=0
    )
    model = MultimodalAmortizedLDA.from_data(
        {"rna": mdata.mod["rna"]}, n_topics=3, likelihoods=["nb"], kl_weight=KL_WEIGHT
    )
    record: dict = {"calls": []}
    base = model._training_plan_cls

    class SpyPlan(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            record["plan"] = self

    model._training_plan_cls = SpyPlan
    module = model.module
    original = module.model

    def spy(*args, **kwargs):
        plan = record.get("plan")
        trace = poutine.trace(original).get_trace(*args, **kwargs)
        n_cells = args[0].shape[0]
        record["calls"].append(
            {
                "epoch": None if plan is None or plan._trainer is None else plan.current_epoch,
                "training": module.training,
                "kl_weight": kwargs.get("kl_weight"),
                # a global site is scaled by β_KL; the local one by β_KL · N_train / B
                "global_scale": float(trace.nodes["log_topic_feature_dist_0"]["scale"]),
                "local_scale": float(trace.nodes["log_cell_topic_dist"]["scale"]),
                "plate_scale": (module.n_obs or n_cells) / n_cells,
            }
        )

    module.model = spy
    scvi.settings.seed = 0
    model.train(
        max_epochs=MAX_EPOCHS,
        batch_size=BATCH_SIZE,
        enable_progress_bar=False,
        plan_kwargs={"kl_warmup_fraction": FRACTION, "kl_warmup_min": KL_MIN},
    )
    return model, record


def test_logged_kl_weight_follows_schedule(spied_training):
    model, _ = spied_training
    logged = model.history["kl_weight"].to_numpy(dtype=float).ravel()
    np.testing.assert_allclose(logged, EXPECTED, rtol=0, atol=1e-6)


def test_kl_weight_passed_to_every_training_step(spied_training):
    _, record = spied_training
    train_calls = [c for c in record["calls"] if c["training"] and c["epoch"] is not None]
    per_epoch = {e: [c for c in train_calls if c["epoch"] == e] for e in range(MAX_EPOCHS)}
    for epoch, calls in per_epoch.items():
        assert len(calls) == math.ceil(0.9 * N_CELLS / BATCH_SIZE), (epoch, len(calls))
        for call in calls:
            assert call["kl_weight"] == pytest.approx(EXPECTED[epoch], abs=1e-6), (epoch, call)


def test_kl_weight_passed_to_validation_steps(spied_training):
    _, record = spied_training
    val_calls = [c for c in record["calls"] if not c["training"] and c["epoch"] is not None]
    assert {c["epoch"] for c in val_calls} >= set(range(MAX_EPOCHS))
    for call in val_calls:
        assert call["kl_weight"] == pytest.approx(EXPECTED[call["epoch"]], abs=1e-6), call


def test_kl_weight_scales_the_latent_sites(spied_training):
    _, record = spied_training
    calls = [c for c in record["calls"] if c["epoch"] is not None]
    assert calls
    for call in calls:
        beta = EXPECTED[call["epoch"]]
        assert call["global_scale"] == pytest.approx(beta, rel=1e-5), call
        assert call["local_scale"] == pytest.approx(beta * call["plate_scale"], rel=1e-5), call
