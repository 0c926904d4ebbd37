"""Simulated tissues with planted truth and the bundled demo data."""

from ._demo import demo_tissue
from ._demo_sdata import demo
from ._family import GENERATORS, TissueGenerator, simulate_family
from ._simulate import SimulationTruth, simulate_tissue, simulate_tissue_dict

__all__ = [
    "GENERATORS",
    "SimulationTruth",
    "TissueGenerator",
    "demo",
    "demo_tissue",
    "simulate_family",
    "simulate_tissue",
    "simulate_tissue_dict",
]
