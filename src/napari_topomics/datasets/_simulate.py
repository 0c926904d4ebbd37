"""Simulated multimodal spatial tissue with planted topics (RNA NB, protein, ATAC)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ._layout import DomainMixing, SpatialLayout, domain_topic_means, make_layout, sample_theta
from ._profiles import CSRBuilder, default_n_markers, make_profiles
from ._sampling import NoiseModel, n_threads, sample_block
from ._truth import SimulationTruth

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData

__all__ = ["SimulationTruth", "simulate_tissue", "simulate_tissue_dict"]

BLOCK_ROWS = 4096  # rows per random stream, so results do not depend on chunk_size
_MOD_IDS = {"rna": 1, "protein": 2, "atac": 3}
_PREFIX = {"rna": "gene", "protein": "prot", "atac": "peak"}
_BASELINE_SIGMA = {"rna": 1.0, "protein": 0.5, "atac": 0.5}
_TOPIC_NOISE = 0.3  # per-topic log-normal perturbation of the shared baseline


def _lognormal_mean_one(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    return np.exp(sigma * rng.standard_normal(n) - 0.5 * sigma**2)


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def simulate_tissue_dict(
    n_cells: int = 5000,
    n_topics: int = 8,
    n_genes: int = 2000,
    n_proteins: int = 30,
    n_peaks: int = 3000,
    n_domains: int | None = None,
    *,
    rna_depth: float = 3000.0,
    protein_depth: float = 1000.0,
    atac_open_fraction: float = 0.07,
    dirichlet_alpha: float = 0.5,
    domain_strength: float = 0.6,
    boundary_width: float = 0.1,
    domain_mixing: DomainMixing = "dominant",
    informative_domains: Mapping[str, Sequence[int]] | None = None,
    n_markers: int | Mapping[str, int] | None = None,
    marker_fold: float = 12.0,
    library_sigma: float = 0.4,
    rna_dispersion: float = 5.0,
    protein_dispersion: float = 10.0,
    protein_ambient_fraction: float = 0.15,
    protein_likelihood: Literal["nb", "multinomial"] = "nb",
    n_batches: int = 1,
    batch_effect: float = 0.0,
    spatial_layout: SpatialLayout = "grid",
    seed: int = 0,
    chunk_size: int = 20000,
) -> tuple[dict[str, AnnData], SimulationTruth]:
    """Like :func:`simulate_tissue`, but return ``{modality: AnnData}`` instead of MuData."""
    params = {k: v for k, v in locals().items() if k != "n_markers"}
    params["n_markers"] = dict(n_markers) if isinstance(n_markers, Mapping) else n_markers
    params["informative_domains"] = {
        m: [int(d) for d in ds] for m, ds in (informative_domains or {}).items()
    }
    n_domains = n_topics if n_domains is None else n_domains
    sizes = {"rna": n_genes, "protein": n_proteins, "atac": n_peaks}
    mods = [m for m, f in sizes.items() if f > 0]
    if n_cells < 1 or n_topics < 1 or n_domains < 1 or not mods:
        raise ValueError("n_cells, n_topics, n_domains and one modality size must be >= 1")
    if n_domains > n_cells:
        raise ValueError(f"n_domains ({n_domains}) must not exceed n_cells ({n_cells})")
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    if protein_likelihood not in ("nb", "multinomial"):
        raise ValueError(
            f"protein_likelihood must be 'nb' or 'multinomial', got {protein_likelihood!r}"
        )
    if not 0.0 <= domain_strength <= 1.0 or not 0.0 <= protein_ambient_fraction < 1.0:
        raise ValueError("domain_strength must be in [0, 1], protein_ambient_fraction in [0, 1)")
    if not 0.0 < atac_open_fraction < 1.0:
        raise ValueError(f"atac_open_fraction must be in (0, 1), got {atac_open_fraction}")

    # Cells: layout, domains, smooth θ, batches (one stream, shared by all modalities).
    rng = _stream(seed, 0, 0)
    coords, weights, domain = make_layout(n_cells, n_domains, spatial_layout, boundary_width, rng)
    means, _ = domain_topic_means(n_domains, n_topics, domain_strength, rng, domain_mixing)
    theta = sample_theta(weights, means, dirichlet_alpha, rng)
    theta_of = _modality_thetas(theta, domain, params["informative_domains"], mods, n_domains)
    del weights
    batch = rng.integers(n_batches, size=n_cells) if n_batches > 1 else None
    truth = SimulationTruth(theta, {}, {}, domain, batch, coords, means, params=params)

    # Per modality: profiles, libraries, noise parameters (one stream each).
    depth_of = {"rna": rna_depth, "protein": protein_depth}
    profile: dict[str, np.ndarray] = {}
    for mod in mods:
        mrng = _stream(seed, 0, _MOD_IDS[mod])
        if isinstance(n_markers, Mapping):
            n_mk = int(n_markers.get(mod, default_n_markers(mod, sizes[mod], n_topics)))
        elif n_markers is not None:
            n_mk = int(n_markers)
        else:
            n_mk = default_n_markers(mod, sizes[mod], n_topics)
        try:
            phi, mk = make_profiles(
                n_topics, sizes[mod], n_mk, marker_fold, _BASELINE_SIGMA[mod], _TOPIC_NOISE, mrng
            )
        except ValueError as err:
            raise ValueError(f"modality {mod!r}: {err}") from None
        truth.topic_feature[mod], truth.markers[mod] = phi, mk
        profile[mod] = phi.astype(np.float32)
        scale = _lognormal_mean_one(mrng, library_sigma, n_cells)
        if mod == "atac":
            truth.library_size[mod] = np.minimum(atac_open_fraction, 0.95) * sizes[mod] * scale
            continue
        truth.library_size[mod] = depth_of[mod] * scale
        disp = rna_dispersion if mod == "rna" else protein_dispersion
        truth.dispersion[mod] = disp * mrng.lognormal(0.0, 0.3, size=sizes[mod])
        if mod == "protein" and protein_ambient_fraction > 0:
            amb = phi.mean(axis=0) * mrng.lognormal(0.0, 0.3, size=sizes[mod])
            truth.ambient_profile[mod] = amb / amb.sum()
            truth.ambient_fraction[mod] = float(protein_ambient_fraction)
        if mod == "rna" and batch is not None:
            offset = batch_effect * mrng.standard_normal((n_batches, sizes[mod]))
            truth.batch_offset[mod] = offset
            tilted = phi[None, :, :] * np.exp(offset)[:, None, :]
            profile[mod] = (tilted / tilted.sum(axis=2, keepdims=True)).astype(np.float32)
    if protein_likelihood == "multinomial":
        truth.dispersion.pop("protein", None)

    # Counts: blocks of BLOCK_ROWS rows (one random stream each) sampled in parallel;
    # chunk_size rows are in flight at a time.
    kinds = {"rna": "nb", "protein": protein_likelihood, "atac": "bernoulli"}
    models = {
        mod: NoiseModel(
            kind=kinds[mod],
            profile=profile[mod],
            ambient=truth.ambient_profile.get(mod),
            ambient_fraction=truth.ambient_fraction.get(mod, 0.0),
            dispersion=truth.dispersion.get(mod),
        )
        for mod in mods
    }
    chunk = max(BLOCK_ROWS, -(-int(chunk_size) // BLOCK_ROWS) * BLOCK_ROWS)
    builders = {mod: CSRBuilder(n_cells, sizes[mod]) for mod in mods}
    # Our own threads run the sampling; BLAS threads on top would only contend.
    with ThreadPoolExecutor(n_threads()) as pool, threadpool_limits(1, user_api="blas"):
        for c0 in range(0, n_cells, chunk):
            jobs = []
            for mod in mods:
                for b0 in range(c0, min(c0 + chunk, n_cells), BLOCK_ROWS):
                    rows = slice(b0, min(b0 + BLOCK_ROWS, n_cells))
                    brng = _stream(seed, _MOD_IDS[mod], b0 // BLOCK_ROWS)
                    args = (theta_of[mod][rows], None if batch is None else batch[rows])
                    lib = truth.library_size[mod][rows]
                    fut = pool.submit(sample_block, models[mod], *args, lib, brng)
                    jobs.append((mod, rows, fut))
            for mod, rows, fut in jobs:
                data, indices, counts, truth.library_size[mod][rows] = fut.result()
                builders[mod].append(data, indices, counts)
            del jobs

    return _assemble(builders, truth, sizes, mods), truth


def _modality_thetas(
    theta: np.ndarray,
    domain: np.ndarray,
    informative: dict[str, list[int]],
    mods: list[str],
    n_domains: int,
) -> dict[str, np.ndarray]:
    """The mixture each modality's counts are drawn from.

    A modality listed in ``informative`` reads the cell's topics only in those domains;
    elsewhere its counts come from the topic-averaged profile (uniform θ), so they carry no
    information about the cell's topics.
    """
    unknown = set(informative) - set(mods)
    if unknown:
        raise ValueError(f"informative_domains names unknown modalities {sorted(unknown)}")
    out = {}
    for mod in mods:
        if mod not in informative:
            out[mod] = theta
            continue
        keep = np.asarray(informative[mod], dtype=np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= n_domains):
            raise ValueError(
                f"informative_domains[{mod!r}] must hold domains in [0, {n_domains}), "
                f"got {sorted(set(keep.tolist()))}"
            )
        mixed = theta.copy()
        mixed[~np.isin(domain, keep)] = 1.0 / theta.shape[1]
        out[mod] = mixed
    return out


def _assemble(
    builders: dict[str, CSRBuilder],
    truth: SimulationTruth,
    sizes: dict[str, int],
    mods: list[str],
) -> dict[str, AnnData]:
    from anndata import AnnData

    n_cells = truth.theta.shape[0]
    width = len(str(n_cells - 1))
    obs_names = pd.Index([f"cell{i:0{width}d}" for i in range(n_cells)])
    obs = pd.DataFrame(index=obs_names)
    obs["domain"] = pd.Categorical.from_codes(
        truth.domain, categories=[f"domain_{d}" for d in range(truth.domain_means.shape[0])]
    )
    if truth.batch is not None:
        n_b = int(truth.params["n_batches"])
        obs["batch"] = pd.Categorical.from_codes(
            truth.batch, categories=[f"batch_{b}" for b in range(n_b)]
        )
    out: dict[str, AnnData] = {}
    for mod in mods:
        fw = len(str(sizes[mod] - 1))
        var = pd.DataFrame(index=pd.Index([f"{_PREFIX[mod]}{j:0{fw}d}" for j in range(sizes[mod])]))
        adata = AnnData(X=builders.pop(mod).build(), obs=obs.copy(), var=var)
        adata.obsm["spatial"] = truth.coords.copy()
        out[mod] = adata
    return out


def simulate_tissue(
    n_cells: int = 5000,
    n_topics: int = 8,
    n_genes: int = 2000,
    n_proteins: int = 30,
    n_peaks: int = 3000,
    n_domains: int | None = None,
    *,
    rna_depth: float = 3000.0,
    protein_depth: float = 1000.0,
    atac_open_fraction: float = 0.07,
    dirichlet_alpha: float = 0.5,
    domain_strength: float = 0.6,
    boundary_width: float = 0.1,
    domain_mixing: DomainMixing = "dominant",
    informative_domains: Mapping[str, Sequence[int]] | None = None,
    n_markers: int | Mapping[str, int] | None = None,
    marker_fold: float = 12.0,
    library_sigma: float = 0.4,
    rna_dispersion: float = 5.0,
    protein_dispersion: float = 10.0,
    protein_ambient_fraction: float = 0.15,
    protein_likelihood: Literal["nb", "multinomial"] = "nb",
    n_batches: int = 1,
    batch_effect: float = 0.0,
    spatial_layout: SpatialLayout = "grid",
    seed: int = 0,
    chunk_size: int = 20000,
) -> tuple[MuData, SimulationTruth]:
    """Simulate a spatial multimodal tissue with planted topics.

    Cells lie on a 2-D ``"grid"`` (square, Voronoi domains) or ``"ring"`` (annulus, arc
    domains) at about one cell per unit area, grouped into ``n_domains`` contiguous
    domains (default ``n_topics``). Each domain has a mean mixture dominated by one topic,
    ``m_d = s e_k + (1 − s)/K`` with ``s = domain_strength``; memberships blend across
    domain boundaries over ``boundary_width`` × the domain size, so
    ``θ_n ~ Dirichlet(dirichlet_alpha · K · m(x_n))`` is spatially smooth
    (``domain_strength=0`` gives i.i.d. ``Dirichlet(dirichlet_alpha)``). With
    ``domain_mixing="shared"`` each domain's mean is instead its own ``Dirichlet(1)`` draw
    over all topics, so cells mix topics that several domains share. A modality named in
    ``informative_domains`` carries the cell's topics only in the listed domains (elsewhere
    its counts follow the topic-averaged profile).

    Each modality has topic profiles ``φ_k`` (a shared log-normal baseline with per-topic
    noise) and each topic owns a disjoint block of marker features boosted ``marker_fold``
    times. With ``r_n = θ_n φ``:

    * RNA: NB counts with mean ``L_n r_n`` (NB size ≈ ``rna_dispersion`` per gene);
      ``L_n`` is log-normal with mean ``rna_depth`` (log-sd ``library_sigma``). With
      ``n_batches > 1`` cells get random batches and batch ``b`` uses
      ``φ̃_bk ∝ φ_k exp(δ_b)``, ``δ_b ~ N(0, batch_effect²)`` per gene.
    * protein: ``r_n = (1 − a) θ_n φ + a · ambient``, ``a = protein_ambient_fraction``,
      then NB (size ≈ ``protein_dispersion``) with mean ``P_n r_n`` or, with
      ``protein_likelihood="multinomial"``, multinomial with total ``round(P_n)``.
    * ATAC: binary with ``P(open) = 1 − exp(−ℓ_n r_nf)``, ``ℓ_n`` solved so that the
      expected open fraction is ``atac_open_fraction`` × a log-normal cell factor.

    A modality with 0 features is left out. Counts are generated in row chunks of
    ``chunk_size`` (rounded up to a multiple of 4096) straight into float32 CSR matrices;
    no dense cells × features array of the whole dataset is made. The random streams are
    keyed by ``seed``, modality and 4096-row block, so the output does not depend on
    ``chunk_size`` and one modality's counts do not change when another's size does.

    Parameters
    ----------
    n_cells, n_topics, n_genes, n_proteins, n_peaks, n_domains
        Sizes (``n_domains=None`` means ``n_topics``).
    rna_depth, protein_depth, atac_open_fraction
        Mean RNA and protein counts per cell and mean fraction of open peaks.
    dirichlet_alpha, domain_strength, boundary_width
        Per-topic Dirichlet concentration, weight of the domain's dominant topic, and
        smoothness of domain boundaries (see above).
    domain_mixing, informative_domains
        How domain means are drawn (``"dominant"`` or ``"shared"``) and, per modality,
        the domains in which it reflects the cell's topics (default: everywhere).
    n_markers, marker_fold
        Marker-block size (int, ``{modality: int}`` or ``None`` for a quarter of the
        features per topic, three quarters for protein, at most 50) and marker boost.
    library_sigma
        Log-scale sd of per-cell depth in every modality.
    rna_dispersion, protein_dispersion, protein_ambient_fraction, protein_likelihood
        Noise model parameters (see above).
    n_batches, batch_effect
        Number of batches and log-scale sd of the per-gene RNA batch offsets.
    spatial_layout
        ``"grid"`` or ``"ring"``.
    seed, chunk_size
        Random seed and rows generated at once.

    Returns
    -------
    mdata
        MuData with modalities ``"rna"``, ``"protein"``, ``"atac"`` (float32 CSR ``X``),
        ``obs["domain"]`` (and ``obs["batch"]`` with several batches) on the MuData and
        every modality, and ``obsm["spatial"]`` likewise.
    truth
        The planted :class:`SimulationTruth`.
    """
    kwargs = dict(locals())

    import mudata

    mods, truth = simulate_tissue_dict(**kwargs)
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.MuData(mods)
    mdata.obsm["spatial"] = truth.coords.copy()
    first = next(iter(mods.values()))
    for key in ("domain", "batch"):
        if key in first.obs:
            mdata.obs[key] = first.obs[key].to_numpy()
            mdata.obs[key] = mdata.obs[key].astype(first.obs[key].dtype)
    return mdata, truth
