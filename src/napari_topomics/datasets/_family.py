"""A family of simulated tissues with planted truth, spanning what users meet.

Each member is :func:`simulate_tissue` with a fixed set of arguments, so every member has
the same ground truth (:class:`SimulationTruth`) and the same scoring. Defaults are chosen
on some members and seeds and judged on others (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._simulate import simulate_tissue

if TYPE_CHECKING:
    from mudata import MuData

    from ._truth import SimulationTruth

__all__ = ["GENERATORS", "TissueGenerator", "simulate_family"]

_MIXED = {"domain_mixing": "shared", "domain_strength": 1.0, "n_domains": 6}
_SHALLOW = {"rna_depth": 300.0, "protein_depth": 100.0, "atac_open_fraction": 0.02}


@dataclass(frozen=True)
class TissueGenerator:
    """One member of the simulator family.

    Attributes
    ----------
    name
        Short identifier.
    description
        What the member tests, in one line.
    kwargs
        Arguments of :func:`simulate_tissue` (sizes come from :func:`simulate_family`).
    fit_topics_offset
        The number of topics to fit minus the true number (a fitted K that differs from
        the truth).
    """

    name: str
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    fit_topics_offset: int = 0

    def fit_topics(self, n_topics: int) -> int:
        """The number of topics a fit on this member should use."""
        return n_topics + self.fit_topics_offset


def _member(name: str, description: str, offset: int = 0, **kwargs: Any) -> TissueGenerator:
    return TissueGenerator(name, description, kwargs, offset)


GENERATORS: dict[str, TissueGenerator] = {
    g.name: g
    for g in (
        _member("one_topic", "each domain dominated by one topic (the original generator)"),
        _member("mixed", "6 domains share 8 topics; cells mix several (Dirichlet 0.3)",
                dirichlet_alpha=0.3, **_MIXED),
        _member("mixed_sharp", "shared topics, nearly one topic per cell (Dirichlet 0.05)",
                dirichlet_alpha=0.05, **_MIXED),
        _member("mixed_flat", "shared topics, evenly mixed cells (Dirichlet 1)",
                dirichlet_alpha=1.0, **_MIXED),
        _member("aspatial", "topics not tied to space (i.i.d. Dirichlet 0.3)",
                dirichlet_alpha=0.3, domain_strength=0.0),
        _member("shallow_mixed", "mixed cells at a tenth of the depth",
                dirichlet_alpha=0.3, **_MIXED, **_SHALLOW),
        _member("regional_protein", "mixed cells; protein informative in 3 of 6 domains",
                dirichlet_alpha=0.3, informative_domains={"protein": [0, 1, 2]}, **_MIXED),
        _member("k_mismatch", "mixed cells fitted with two topics too many",
                offset=2, dirichlet_alpha=0.3, **_MIXED),
    )
}


def simulate_family(
    name: str,
    *,
    n_cells: int = 5000,
    n_topics: int = 8,
    n_genes: int = 2000,
    n_proteins: int = 30,
    n_peaks: int = 3000,
    seed: int = 0,
    **overrides: Any,
) -> tuple[MuData, SimulationTruth]:
    """Simulate one member of :data:`GENERATORS`.

    Parameters
    ----------
    name
        A key of :data:`GENERATORS`.
    n_cells, n_topics, n_genes, n_proteins, n_peaks, seed
        Sizes and seed, as in :func:`simulate_tissue`.
    **overrides
        Further :func:`simulate_tissue` arguments; they win over the member's own.

    Returns
    -------
    The MuData and its :class:`SimulationTruth`, as :func:`simulate_tissue`.
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    kwargs = {**GENERATORS[name].kwargs, **overrides}
    return simulate_tissue(
        n_cells=n_cells, n_topics=n_topics, n_genes=n_genes, n_proteins=n_proteins,
        n_peaks=n_peaks, seed=seed, **kwargs,
    )
