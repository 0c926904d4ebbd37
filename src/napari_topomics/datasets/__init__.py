"""Simulated tissues with planted truth and the bundled demo data."""

from ._demo import demo_tissue
from ._demo_sdata import demo
from ._simulate import SimulationTruth, simulate_tissue, simulate_tissue_dict

__all__ = ["SimulationTruth", "demo", "demo_tissue", "simulate_tissue", "simulate_tissue_dict"]
