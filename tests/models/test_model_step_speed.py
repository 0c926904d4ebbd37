"""The mechanics behind the training-step speed: fused AdamW, the retained heap, and the
cheaper Bernoulli paths, each checked against the plain computation it replaces."""

from __future__ import annotations

import os
import resource

import anndata as ad
import numpy as np
import pytest
import torch

from napari_topomics.datasets import simulate_tissue
from napari_topomics.models import MultimodalAmortizedLDA, _heap
from napari_topomics.models._training_plan import TopicTrainingPlan
from napari_topomics.module import _likelihoods
from napari_topomics.module._likelihoods import (
    BERNOULLI_EPS,
    FactorisedBernoulli,
    SqueezedBernoulli,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    mdata, _ = simulate_tissue(
        n_cells=300, n_topics=4, n_genes=80, n_proteins=8, n_peaks=120, seed=5
    )
    data = {m: mdata.mod[m] for m in ("rna", "protein", "atac")}
    return MultimodalAmortizedLDA.from_data(data, n_topics=4)


def test_default_adamw_is_fused_unless_the_user_chooses(model):
    plan = TopicTrainingPlan(model.module)
    assert plan.configure_optimizers().defaults["fused"] is True
    foreach = TopicTrainingPlan(model.module, optim_kwargs={"foreach": True})
    optimiser = foreach.configure_optimizers()
    assert not optimiser.defaults.get("fused") and optimiser.defaults["foreach"] is True
    sgd = TopicTrainingPlan(model.module, optim=torch.optim.SGD, optim_kwargs={"lr": 0.1})
    assert "fused" not in sgd._optimizer_kwargs(list(model.module.parameters()))


def test_fused_and_plain_adamw_take_the_same_step():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(50, 7))
    b = torch.nn.Parameter(a.detach().clone())
    fused = torch.optim.AdamW([a], lr=0.05, weight_decay=0.0, fused=True)
    plain = torch.optim.AdamW([b], lr=0.05, weight_decay=0.0)
    for _ in range(5):
        for p, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            (p.sin() * torch.arange(7.0)).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b)


def _faults_while_churning() -> int:
    """Minor page faults while an 8 MB tensor is allocated and freed 20 times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = torch.ones(2_000_000)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(_heap._LIBC is None, reason="glibc malloc tuning only")
def test_retained_heap_reuses_freed_memory():
    with _heap.retained_heap() as applied:
        assert applied
        with _heap.retained_heap():  # nested blocks keep the tuning
            assert _heap._depth == 2
        _faults_while_churning()  # the first block may fault its pages in once
        retained = _faults_while_churning()
    assert _heap._depth == 0
    assert retained < 200  # 20 fresh 8 MB blocks would fault ~40,000 pages


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(_heap._LIBC is None, reason="glibc malloc tuning only")
def test_retained_heap_keeps_freed_memory_and_returns_it_on_exit():
    # Resident memory rather than page faults: where the freed blocks land in the heap
    # depends on what else the process holds, but malloc_trim on exit releases free pages
    # wherever they are.
    with _heap.retained_heap():
        blocks = [torch.ones(2_000_000) for _ in range(25)]  # 200 MB in 8 MB blocks
        held = _resident_bytes()
        del blocks
        after_free = _resident_bytes()
    after_exit = _resident_bytes()
    assert held - after_free < 50 * 1024**2  # kept for the next training step
    assert after_free - after_exit > 150 * 1024**2  # handed back when training ends


def test_training_restores_the_heap_settings(model):
    model.train(max_epochs=1, enable_progress_bar=False)
    assert _heap._depth == 0


def test_bernoulli_log_prob_matches_the_dense_formula():
    torch.manual_seed(1)
    rate = torch.rand(2, 6, 40) * torch.tensor([0.01, 1.0, 30.0]).repeat(2)[:, None]
    value = (torch.rand(2, 6, 40) < 0.3).float()
    value[0, 1] = 0.0  # a cell with nothing open
    value[1, 2] *= 0.5  # soft targets (neighbourhood open fractions)
    p = BERNOULLI_EPS + (1 - 2 * BERNOULLI_EPS) * (-torch.expm1(-rate))
    closed = BERNOULLI_EPS + (1 - 2 * BERNOULLI_EPS) * torch.exp(-rate)
    dense = (value * torch.log(p) + (1 - value) * torch.log(closed)).sum(-1)
    torch.testing.assert_close(SqueezedBernoulli(rate).log_prob(value), dense)


def _dense_bernoulli(theta, phi, library, value):
    rate = library[:, None] * (theta @ phi)
    p = BERNOULLI_EPS + (1 - 2 * BERNOULLI_EPS) * (-torch.expm1(-rate))
    closed = BERNOULLI_EPS + (1 - 2 * BERNOULLI_EPS) * torch.exp(-rate)
    return (value * torch.log(p) + (1 - value) * torch.log(closed)).sum(-1)


@pytest.mark.parametrize(
    ("concentration", "library_scale", "floor_entries"),
    [(0.5, 1.0, "none"), (6.0, 1.0, "some"), (1.0, 8.0, "dense")],
)
def test_factorised_bernoulli_matches_the_dense_formula(
    concentration, library_scale, floor_entries
):
    # flat topics (no large rates), peaked topics (rates up to ~40, where the ε floor of a
    # closed feature matters), and libraries so large that the dense formula takes over
    torch.manual_seed(3)
    value = (torch.rand(40, 600) < 0.1).float()
    value[0] = 0.0  # a cell with nothing open
    value[1] *= 0.5  # soft targets
    library = value.sum(-1) * library_scale
    logits = torch.randn(40, 6, requires_grad=True)
    beta = (torch.randn(6, 600) * concentration).requires_grad_(True)
    candidates = _likelihoods._floor_candidates(torch.softmax(beta, -1), library)
    if floor_entries == "dense":
        assert candidates is None
    else:
        n_floor = candidates[0].numel()
        assert (n_floor > 0) == (floor_entries == "some") and n_floor < value.numel() // 4
    results = []
    for score in (_dense_bernoulli, None):
        theta, phi = torch.softmax(logits, -1), torch.softmax(beta, -1)
        if score is None:
            log_p = FactorisedBernoulli(theta, phi, library).log_prob(value)
        else:
            log_p = score(theta, phi, library, value)
        results.append((log_p.detach(), torch.autograd.grad(log_p.sum(), [logits, beta])))
    (dense, dense_grads), (ours, our_grads) = results
    # within float32 rounding of sums over 600 features (first-order ε term: < 1e-4 nats)
    torch.testing.assert_close(ours, dense, rtol=1e-5, atol=2e-3)
    for mine, reference in zip(our_grads, dense_grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max())


def test_training_scores_bernoulli_factorised_unless_covariates_shift_the_topics(model):
    module = model.module
    x = torch.as_tensor(model.adata.X[:64].toarray(), dtype=torch.float32)
    theta = torch.softmax(torch.randn(64, 4), -1)
    g = module.globals[2].posterior_point()
    factors = module.observation_frequencies(2, theta, g, None, None)
    assert isinstance(factors, _likelihoods.TopicFactors)
    dense_r = module.feature_frequencies(2, theta, g, None, None)
    torch.testing.assert_close(factors.theta @ factors.phi, dense_r)
    obs, data = module.observation(2, x[:, module.config.block(2)], theta, g, None, None, factors)
    assert isinstance(obs, FactorisedBernoulli)
    assert obs.expand(obs.batch_shape) is obs
    # through Pyro's cell plate (which expands every site) the training site stays factorised
    from pyro import poutine

    module.train()
    trace = poutine.trace(module.model).get_trace(x, torch.arange(64))
    assert isinstance(trace.nodes["feature_counts_2"]["fn"].base_dist, FactorisedBernoulli)
    dense_obs, _ = module.observation(2, x[:, module.config.block(2)], theta, g, None, None)
    torch.testing.assert_close(obs.log_prob(data), dense_obs.log_prob(data), rtol=1e-5, atol=2e-3)
    shifted = dict(g, cat_tau=[torch.full((4,), 0.5)], cat_delta=[torch.zeros(2, 120)])
    cat = torch.zeros(64, 1)
    assert torch.is_tensor(module.observation_frequencies(2, theta, shifted, cat, None))
    assert torch.is_tensor(module.observation_frequencies(0, theta, g, None, None))


def test_bernoulli_encoder_input_equals_log1p_of_scaled_binary_counts(model):
    module = model.module
    x = torch.zeros(5, sum(model.n_inputs_modalities))
    atac = module.config.block(2)
    torch.manual_seed(2)
    x[:, atac] = (torch.rand(5, atac.stop - atac.start) < 0.2).float()
    x[:, :3] = torch.tensor([1.0, 4.0, 0.0])
    inputs, _ = module.encoder_inputs(x, None, None, None)
    block = x[:, atac]
    lib = block.sum(-1, keepdim=True).clamp_min(1.0)
    expected = torch.log1p(block * (module.encoder_scale[2] / lib))
    torch.testing.assert_close(inputs[2], expected, rtol=0, atol=0)


def test_observed_blocks_are_clamped_once_per_batch(model):
    module = model.module
    x = torch.randn(6, sum(model.n_inputs_modalities))
    blocks = module.observed_blocks(x)
    assert module.observed_blocks(x) is blocks  # model and guide share one clamp
    for m, sl in enumerate(module.config.blocks):
        torch.testing.assert_close(blocks[m], x[:, sl].clamp_min(0))
    assert module.observed_blocks(x.clone()) is not blocks
    x = x.clone()  # a new batch
    x[0] = -1.0  # nothing left after clamping: absent, like an all-zero block
    x[1] = 0.0
    x[1, 0] = 2.0  # one RNA count: RNA present, the others absent
    mask = module.modality_mask(x)
    assert mask[0].tolist() == [0.0, 0.0, 0.0] and mask[1].tolist() == [1.0, 0.0, 0.0]


def test_gaussian_blocks_are_observed_as_given_and_masked_by_any_value():
    rng = np.random.default_rng(0)
    counts = ad.AnnData(rng.poisson(2.0, size=(30, 8)).astype(np.float32))
    scores = ad.AnnData(rng.normal(size=(30, 5)).astype(np.float32))
    model = MultimodalAmortizedLDA.from_data(
        {"rna": counts, "scores": scores}, n_topics=2, likelihoods=["nb", "gaussian"]
    )
    x = torch.randn(4, 13)
    x[0, 8:] = 0.0  # no Gaussian values: absent
    blocks = model.module.observed_blocks(x)
    torch.testing.assert_close(blocks[0], x[:, :8].clamp_min(0))
    torch.testing.assert_close(blocks[1], x[:, 8:])  # negative values kept
    assert model.module.modality_mask(x)[:, 1].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_validation_runs_in_large_batches_with_the_training_split(model):
    from scvi.dataloaders import DataSplitter

    from napari_topomics.models._splitter import VALIDATION_BATCH_SIZE, ValidationBatchingSplitter

    kwargs = dict(train_size=0.5, batch_size=32, shuffle_set_split=True)
    ours = ValidationBatchingSplitter(model.adata_manager, **kwargs)
    plain = DataSplitter(model.adata_manager, **kwargs)
    ours.setup()
    plain.setup()
    # the same cells are held out, and training batches keep the user's size
    assert list(ours.val_idx) == list(plain.val_idx)
    assert next(iter(ours.train_dataloader()))["X"].shape[0] == 32
    assert VALIDATION_BATCH_SIZE > len(plain.val_idx)
    (batch,) = list(ours.val_dataloader())  # 150 validation cells: one pass, not five
    assert batch["X"].shape[0] == len(plain.val_idx)
    model.train(max_epochs=2, batch_size=32, enable_progress_bar=False)
    assert model.history["elbo_validation"]["elbo_validation"].iloc[-2:].notna().all()
