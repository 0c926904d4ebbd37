"""Resolve the constructor's data-dependent pieces: modality layout, likelihoods, constants."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from scvi import REGISTRY_KEYS

from ..data import _stats as stats
from ..data._modalities import infer_likelihood, normalize_likelihood
from ..module import DataConstants

logger = logging.getLogger(__name__)

MODALITY_SETUP_KEY = "_modality_setup"


def registered_anndata(adata) -> AnnData:
    """The AnnData to build the model on: itself, or the flattened AnnData of a MuData.

    Also checks that every covariate key the scvi registry names is still in ``obs``.
    """
    if isinstance(adata, AnnData):
        check_covariate_keys(adata)
        return adata
    uns = getattr(adata, "uns", None)
    if uns is not None and hasattr(adata, "mod"):
        flat = uns.get("_flattened_ann_data")
        if isinstance(flat, AnnData):
            check_covariate_keys(flat)
            return flat
        raise ValueError(
            "This MuData has not been set up. Call MultimodalAmortizedLDA.setup_data(mdata) "
            "(or setup_mudata) first, or build the model with MultimodalAmortizedLDA.from_data."
        )
    raise TypeError(
        f"adata must be an AnnData or a MuData on which setup ran; got {type(adata).__name__}."
    )


def _registered_manager(adata: AnnData):
    """The scvi ``AnnDataManager`` that set ``adata`` up (searching model subclasses too)."""
    from ._model import MultimodalAmortizedLDA

    uuid = adata.uns.get("_scvi_uuid")
    if uuid is None:
        return None
    pending = [MultimodalAmortizedLDA]
    while pending:
        cls = pending.pop()
        manager = cls._setup_adata_manager_store.get(uuid)
        if manager is not None:
            return manager
        pending.extend(cls.__subclasses__())
    return None


def check_covariate_keys(adata: AnnData) -> None:
    """Raise ``ValueError`` naming any registered covariate key missing from ``obs`` (§2.2)."""
    manager = _registered_manager(adata)
    if manager is None:
        return
    registry = manager.data_registry
    keys: list[str] = []
    if REGISTRY_KEYS.CAT_COVS_KEY in registry:
        keys += list(manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY).field_keys)
    if REGISTRY_KEYS.CONT_COVS_KEY in registry:
        keys += [str(c) for c in manager.get_state_registry(REGISTRY_KEYS.CONT_COVS_KEY).columns]
    missing = [k for k in keys if k not in adata.obs.columns]
    if missing:
        raise ValueError(
            f"The registered covariate key(s) {missing} are missing from adata.obs "
            f"(available columns: {list(adata.obs.columns)}). Restore them or run setup again."
        )


def modality_layout(
    adata: AnnData, n_inputs_modalities, modality_names
) -> tuple[list[int], list[str] | None]:
    """Feature counts and (optional) names, from the arguments or the setup metadata."""
    meta = adata.uns.get(MODALITY_SETUP_KEY)
    if n_inputs_modalities is None:
        if meta is None:
            raise ValueError(
                "n_inputs_modalities was not given and the AnnData carries no setup metadata "
                f"(uns[{MODALITY_SETUP_KEY!r}]). Run a setup method first."
            )
        n_inputs_modalities = list(meta["feature_counts"])
    if isinstance(n_inputs_modalities, str | int) or not isinstance(
        n_inputs_modalities, Sequence | np.ndarray
    ):
        raise TypeError(
            f"n_inputs_modalities must be a list of integers; got {n_inputs_modalities!r}."
        )
    counts = []
    for i, value in enumerate(n_inputs_modalities):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"n_inputs_modalities[{i}] must be an integer >= 1; got {value!r}.")
        counts.append(int(value))
    if sum(counts) != adata.n_vars:
        raise ValueError(
            f"sum of n_inputs_modalities (got {sum(counts)}) must equal the number of "
            f"registered features ({adata.n_vars})."
        )
    names = None
    if modality_names is not None:
        names = [str(n) for n in modality_names]
        if len(names) != len(counts):
            raise ValueError(
                f"modality_names has length {len(names)} but there are {len(counts)} "
                "modalities (n_inputs_modalities)."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"modality_names must be unique; got {names}.")
    elif meta is not None and len(meta["modality_names"]) == len(counts):
        names = [str(n) for n in meta["modality_names"]]
    return counts, names or [str(i) for i in range(len(counts))]


def resolve_likelihoods(likelihoods, counts: list[int], names: list[str], X) -> list[str]:
    """Validate given likelihoods, and infer missing ones from the modality kinds and data.

    ``likelihoods`` is None (infer all, §4.8) or one entry per modality, where an entry may
    be None to infer that modality's likelihood only.
    """
    if likelihoods is None:
        likelihoods = [None] * len(counts)
    if isinstance(likelihoods, str) or not isinstance(likelihoods, Sequence):
        raise TypeError(f"likelihoods must be a list of strings; got {likelihoods!r}.")
    if len(likelihoods) != len(counts):
        raise ValueError(
            f"likelihoods has length {len(likelihoods)} but n_inputs_modalities has "
            f"{len(counts)} entries; give one likelihood per modality."
        )
    resolved = []
    for i, (value, name, sl) in enumerate(
        zip(likelihoods, names, stats.block_slices(counts), strict=True)
    ):
        if value is None:
            value = infer_likelihood(name, stats.block_stats(X, sl))
            logger.info("Inferred likelihood %r for modality %r.", value, name)
        else:
            normalize_likelihood(value, i)
        resolved.append(value)
    return resolved


def check_blocks(X, counts: list[int], names: list[str], likelihoods: list[str]) -> None:
    """Reject NaN, negative counts and non-binary Bernoulli data; warn on non-integers."""
    stats.check_finite(X, counts, names)
    for name, sl, lik in zip(names, stats.block_slices(counts), likelihoods, strict=True):
        kind = normalize_likelihood(lik)
        if kind == "gaussian":
            continue
        block = stats.block_stats(X, sl)
        if block.has_negative:
            raise ValueError(
                f"Modality {name!r} has negative values, which the {lik!r} likelihood cannot "
                "model. Pass likelihoods=[..., 'gaussian', ...] for continuous data or register "
                "a count layer."
            )
        if kind == "bernoulli" and not block.is_binary:
            raise ValueError(
                f"Modality {name!r} uses the 'bernoulli' likelihood but holds values other "
                f"than 0 and 1: {list(block.offending_nonbinary)}. Binarise it or use "
                "'multinomial'."
            )
        if kind != "bernoulli" and not block.is_integer:
            warnings.warn(
                f"Modality {name!r} holds non-integer values; the {lik!r} likelihood rounds "
                "them.",
                UserWarning,
                stacklevel=4,
            )


def data_constants(
    X, counts: list[int], likelihoods: list[str], bg_offset: float, use_background: bool,
    continuous: np.ndarray | None,
) -> tuple[DataConstants, np.ndarray]:
    """Background initialisation, continuous standardisation and library sizes."""
    lib = stats.library_sizes(X, counts)
    constants = DataConstants()
    for m, sl in enumerate(stats.block_slices(counts)):
        if use_background and normalize_likelihood(likelihoods[m]) in ("gamma_poisson", "nb"):
            constants.background_init[m] = stats.feature_background_init(
                X, sl, bg_offset, lib=lib[:, m]
            )
    if continuous is not None and continuous.shape[1] > 0:
        mean, scale = stats.standardise_continuous(continuous)
        constants.continuous_mean, constants.continuous_scale = mean, scale
    return constants, lib
