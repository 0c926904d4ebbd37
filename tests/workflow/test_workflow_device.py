"""Device choice: only what exists, and a clear error otherwise."""

from __future__ import annotations

import pytest
import torch

from napari_topomics.io import TopomicsInputError
from napari_topomics.workflow import available_devices, resolve_device
from napari_topomics.workflow._fit import default_threads


def test_auto_picks_the_best_available_device():
    device = resolve_device("auto")
    assert device.name == available_devices()[0]
    assert available_devices()[-1] == "cpu"
    assert resolve_device("CPU").train_kwargs() == {"accelerator": "cpu", "device": "auto"}


def test_unknown_or_missing_devices_are_named():
    with pytest.raises(TopomicsInputError, match="'tpu'.*auto, cpu, cuda, mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(TopomicsInputError, match="'cuda' is not available.*cpu"):
            resolve_device("cuda")


def test_cli_refuses_a_gpu_that_is_not_there(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from napari_topomics.cli import main

    assert main(["fit", str(tmp_path / "any.zarr"), "--device", "cuda"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "cuda" in lines[0]


def test_default_threads_is_half_the_cores_within_bounds(monkeypatch):
    import os

    for cores, expected in ((1, 1), (2, 1), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert default_threads() == expected
