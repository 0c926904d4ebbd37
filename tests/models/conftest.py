"""Tiny multimodal data sets and shared trained models for the model tests.

Everything here is small (a few hundred cells, tens of features) and seeded, so each
model trains in about a second on a CPU core.
"""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch

N_CELLS = 180
N_RNA, N_PROT, N_ATAC = 30, 8, 24
N_TOPICS = 4
N_MISSING_PROT = 20  # cells absent from the protein modality in the "partial" MuData
TRAIN_KWARGS = {"max_epochs": 3, "batch_size": 64, "enable_progress_bar": False}
SMALL_MODEL = {"n_topics": N_TOPICS, "n_hidden": 16}


def _quiet():
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


_quiet()


def _planted(rng, n_cells: int, n_topics: int = N_TOPICS):
    """Cell mixtures θ and disjoint marker blocks per topic (helps training move)."""
    theta = rng.dirichlet(np.full(n_topics, 0.3), size=n_cells)

    def profiles(n_features):
        prof = np.full((n_topics, n_features), 0.2)
        for k, block in enumerate(np.array_split(np.arange(n_features), n_topics)):
            prof[k, block] += 5.0
        return prof / prof.sum(1, keepdims=True)

    return theta, profiles


def make_modalities(seed: int = 0, n_cells: int = N_CELLS):
    """RNA (NB counts, with a ``counts`` layer and log1p ``X``), protein counts, binary ATAC."""
    rng = np.random.default_rng(seed)
    theta, profiles = _planted(rng, n_cells)
    cells = pd.Index([f"cell_{i}" for i in range(n_cells)])
    lib = rng.integers(50, 300, size=n_cells)
    r_rna = theta @ profiles(N_RNA)
    rna_counts = rng.negative_binomial(2, 2 / (2 + lib[:, None] * r_rna)).astype(np.float32)
    r_prot = theta @ profiles(N_PROT)
    prot = np.vstack([rng.multinomial(int(l), p) for l, p in zip(lib, r_prot, strict=True)])
    r_atac = theta @ profiles(N_ATAC)
    atac = (rng.random((n_cells, N_ATAC)) < 1 - np.exp(-8 * r_atac)).astype(np.float32)
    obs = pd.DataFrame(index=cells)
    rna = ad.AnnData(
        X=np.log1p(rna_counts).astype(np.float32),
        obs=obs.copy(),
        var=pd.DataFrame(index=[f"gene_{i}" for i in range(N_RNA)]),
    )
    rna.layers["counts"] = rna_counts
    protein = ad.AnnData(
        X=prot.astype(np.float32),
        obs=obs.copy(),
        var=pd.DataFrame(index=[f"prot_{i}" for i in range(N_PROT)]),
    )
    atac_ad = ad.AnnData(
        X=sp.csr_matrix(atac),
        obs=obs.copy(),
        var=pd.DataFrame(index=[f"peak_{i}" for i in range(N_ATAC)]),
    )
    return {"rna": rna, "protein": protein, "atac": atac_ad}, theta


def make_mudata(seed: int = 0, n_cells: int = N_CELLS, partial: bool = False) -> md.MuData:
    """The three modalities as a MuData; ``partial`` drops some cells from protein."""
    mods, _ = make_modalities(seed, n_cells)
    if partial:
        mods["protein"] = mods["protein"][N_MISSING_PROT:].copy()
    mdata = md.MuData(mods)
    return mdata


def rna_only(seed: int = 0, n_cells: int = N_CELLS) -> ad.AnnData:
    """One RNA AnnData (log1p ``X``, raw ``counts`` layer)."""
    return make_modalities(seed, n_cells)[0]["rna"]


def dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


@pytest.fixture(autouse=True)
def _seed():
    scvi.settings.seed = 0
    yield




def _build(partial: bool, train: bool = True, **kwargs):
    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = 0
    mdata = make_mudata(partial=partial)
    params = {**SMALL_MODEL, **kwargs}
    model = MultimodalAmortizedLDA.from_data(mdata, layers={"rna": "counts"}, **params)
    if train:
        model.train(**TRAIN_KWARGS, lr=1e-2)
    return model


@pytest.fixture(scope="session")
def build_model():
    """``build_model(partial, train=True, **model_kwargs)`` → a fresh (trained) model."""
    return _build


@pytest.fixture(scope="session")
def trained_model():
    """A shared 3-modality model (cell weights) trained for 3 epochs. Do not train it."""
    return _build(partial=True)


@pytest.fixture(scope="session")
def untrained_model():
    """A shared 3-modality model that was never trained. Do not train it."""
    return _build(partial=True, train=False)


def perturb_parameters(model, scale: float = 0.05, seed: int = 1) -> None:
    """Add seeded noise to every module parameter (makes weights far from uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen).to(p.device))


class Helpers:
    """Builders and helpers handed to tests through the ``helpers`` fixture."""

    modalities = staticmethod(make_modalities)
    mudata = staticmethod(make_mudata)
    rna = staticmethod(rna_only)
    dense = staticmethod(dense)
    perturb = staticmethod(perturb_parameters)
    train_kwargs = TRAIN_KWARGS
    small = SMALL_MODEL
    n_topics = N_TOPICS
    n_missing_prot = N_MISSING_PROT
    n_cells = N_CELLS
    n_features = (N_RNA, N_PROT, N_ATAC)


@pytest.fixture(scope="session")
def helpers():
    return Helpers
