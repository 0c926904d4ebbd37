"""The fit widget's Qt-free parts: finding the table of a layer, refusing bad choices,
the training job as a generator, remembered values and the save functions."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest
import torch
from _plugin_fit_support import demo_sdata

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.plugin import _settings as settings
from napari_topomics.plugin._fit_options import (
    build_config,
    ids_problem,
    inspect_modalities,
    likelihood_problem,
    run_problem,
    source_from_layer,
)
from napari_topomics.plugin._worker import FitJob, error_message
from napari_topomics.workflow import available_devices
from napari_topomics.workflow._progress import ProgressEvent

torch.set_num_threads(1)


def _labels(tissue, data=None, **meta):
    from napari.layers import Labels

    data = np.asarray(tissue["demo_cells"].data) if data is None else data
    return Labels(data, name="cells", metadata=meta)


def _values(**over):
    base = {"table": "table", "counts_layer": "X", "modalities": ["rna", "protein", "atac"],
            "likelihoods": {}, "n_topics": 4, "n_epochs": 3, "spatial": False,
            "device": "auto", "seed": 0, "run_name": "r1", "batch_size": 64, "n_hidden": 32,
            "weight_mode": "cell", "aggregation_type": "moe",
            "topic_feature_prior_type": "logistic_normal", "learnable_dispersion": False,
            "threads": 1, "n_top": 5}
    return {**base, **over}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))


def test_source_from_layer_in_memory_and_store(tmp_path):
    sdata = demo_sdata()
    source = source_from_layer(_labels(sdata, sdata=sdata, topomics_element="demo_cells"))
    assert source.sdata is sdata
    assert (source.element, source.tables, source.path) == ("demo_cells", ["table"], None)

    from spatialdata import SpatialData

    store = tmp_path / "t.zarr"
    SpatialData(labels={"demo_cells": sdata["demo_cells"]}, tables=dict(sdata.tables)).write(store)
    on_disk = source_from_layer(
        _labels(sdata, topomics_source=str(store), topomics_element="demo_cells")
    )
    assert on_disk.path == str(store)
    assert on_disk.sdata.tables["table"].n_obs == sdata.tables["table"].n_obs


def test_source_errors_name_the_layer_and_choices():
    sdata = demo_sdata()
    with pytest.raises(TopomicsInputError, match="'cells' has no table"):
        source_from_layer(_labels(sdata))
    with pytest.raises(TopomicsInputError, match=r"elements: \['demo_cells'\]"):
        source_from_layer(_labels(sdata, sdata=sdata, topomics_element="nuclei"))


def test_modalities_and_likelihood_checks():
    sdata = demo_sdata()
    infos = {i.name: i for i in inspect_modalities(sdata, "table")}
    feature_types = sdata.tables["table"].var["feature_types"].value_counts()
    assert infos["rna"].n_features == feature_types["Gene Expression"]
    assert infos["protein"].n_features == feature_types["Antibody Capture"]
    assert infos["atac"].n_features == feature_types["Peaks"]
    assert (infos["rna"].inferred, infos["atac"].inferred) == ("gamma_poisson", "bernoulli")
    assert infos["protein"].inferred == "multinomial"
    assert likelihood_problem(infos["protein"], None) is None
    assert likelihood_problem(infos["protein"], "gaussian") is None
    msg = likelihood_problem(infos["protein"], "bernoulli")
    assert "'bernoulli'" in msg and "'protein'" in msg and "\n" not in msg


def test_non_count_layer_is_refused():
    from anndata import AnnData
    from spatialdata import SpatialData
    from spatialdata.models import TableModel

    base = demo_sdata()
    table = base.tables["table"]
    logged = AnnData(
        X=table.X.copy(), obs=table.obs.copy(), var=table.var.copy(),
        layers={"log": np.log1p(table.X.toarray())},
    )
    logged = TableModel.parse(logged, region="demo_cells", region_key="region",
                              instance_key="cell_id")
    sdata = SpatialData(labels={"demo_cells": base["demo_cells"]}, tables={"table": logged})
    infos = inspect_modalities(sdata, "table", "log")
    assert all(i.inferred is None for i in infos)
    msg = likelihood_problem(infos[0], None)
    assert "non-integer" in msg and "gaussian" in msg
    layer = _labels(sdata, sdata=sdata, topomics_element="demo_cells")
    source = source_from_layer(layer)
    problem = run_problem(layer, source, None, _values(counts_layer="log"), infos)
    assert problem is not None and "non-integer" in problem
    assert run_problem(layer, source, None, _values(counts_layer="log", likelihoods={
        m: "gaussian" for m in ("rna", "protein", "atac")}), infos) is None


def test_ids_must_match_the_labels():
    sdata = demo_sdata()
    good = _labels(sdata, sdata=sdata, topomics_element="demo_cells")
    source = source_from_layer(good)
    assert ids_problem(good, source, "table") is None
    data = np.asarray(sdata["demo_cells"].data).copy()
    data[data > 0] += 5000
    shifted = _labels(sdata, data, sdata=sdata, topomics_element="demo_cells")
    msg = ids_problem(shifted, source, "table")
    n = sdata.tables["table"].n_obs
    assert msg.startswith(f"{n} of {n} ids of table 'table'") and "'cell_id'" in msg


def test_run_problem_order_and_messages():
    sdata = demo_sdata()
    layer = _labels(sdata, sdata=sdata, topomics_element="demo_cells")
    source = source_from_layer(layer)
    infos = inspect_modalities(sdata, "table")
    assert run_problem(layer, source, None, _values(), infos) is None
    assert "No labels or points layer" in run_problem(None, None, None, _values(), infos)
    assert run_problem(layer, None, "Layer 'x' has no table.", _values(), infos) == (
        "Layer 'x' has no table."
    )
    assert "No modality chosen" in run_problem(layer, source, None, _values(modalities=[]),
                                               infos)
    assert run_problem(layer, source, None, _values(spatial=True), infos) is None
    assert "needs a radius" in run_problem(
        layer, source, None, _values(spatial=True, graph="radius", radius=None), infos)
    assert "Invalid run name 'bad name'" in run_problem(
        layer, source, None, _values(run_name="bad name"), infos)
    missing = [d for d in ("cuda", "mps") if d not in available_devices()]
    if missing:
        msg = run_problem(layer, source, None, _values(device=missing[0]), infos)
        assert f"'{missing[0]}' is not available" in msg


def test_build_config_maps_the_values():
    sdata = demo_sdata()
    source = source_from_layer(_labels(sdata, sdata=sdata, topomics_element="demo_cells"))
    config = build_config(_values(modalities=["rna", "atac"], counts_layer="X",
                                  likelihoods={"rna": "multinomial", "protein": "gaussian"},
                                  weight_mode="equal"), source)
    assert config.modalities == ["rna", "atac"] and config.layers is None
    assert config.likelihoods == {"rna": "multinomial"}  # only the chosen modalities
    assert (config.element, config.table, config.threads) == ("demo_cells", "table", 1)
    assert config.model_kwargs["weight_mode"] == "equal"
    assert config.model_kwargs["n_hidden"] == 32


def _event(step: int, n: int = 50) -> ProgressEvent:
    return ProgressEvent(epoch=step // 10, n_epochs=n // 10, step=step, n_steps=n,
                         loss=100.0 - step, epoch_loss=None, elapsed_s=0.0, eta_s=0.0)


def test_job_yields_throttled_events_and_restores_threads():
    seen_threads = []

    def fake_fit(source, config, *, on_progress, should_stop, source_label):
        seen_threads.append(threading.current_thread().name)
        for step in range(1, 51):
            on_progress(_event(step))
        return "outcome"

    switch, threads = sys.getswitchinterval(), torch.get_num_threads()
    job = FitJob("src", object(), interval=10.0, fit=fake_fit)
    events, result = _run(job.events())
    assert 1 <= len(events) <= 2  # throttled: the first event, then the last one
    assert events[-1].step == 50
    assert result.outcome == "outcome" and result.ok and result.message is None
    assert seen_threads == ["topomics-fit"]
    assert (sys.getswitchinterval(), torch.get_num_threads()) == (switch, threads)


def _run(gen):
    """Iterate a generator to the end: (yielded values, returned value)."""
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration as stop:
            return out, stop.value


def test_job_stop_and_errors_come_back_as_results():
    def stoppable(source, config, *, on_progress, should_stop, source_label):
        step = 0
        while not should_stop():
            step += 1
            on_progress(_event(step, 10**6))
        return type("Outcome", (), {"stopped": True, "steps": step})()

    job = FitJob("src", object(), interval=0.01, fit=stoppable)
    gen = job.events()
    first = next(gen)
    assert first.step >= 1
    job.request_stop()
    _, result = _run(gen)
    assert result.stopped and not result.ok and result.message is None

    def failing(*args, **kwargs):
        raise TopomicsInputError("Table 'x' has no cells (0 rows); nothing to fit.")

    _, result = _run(FitJob("src", object(), fit=failing).events())
    assert result.message == "Table 'x' has no cells (0 rows); nothing to fit."
    assert result.outcome is None
    assert error_message(RuntimeError("CUDA out of memory\nmore")) == (
        "Training failed: RuntimeError: CUDA out of memory"
    )


def test_values_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "v.json"
    assert settings.load_values(path) == {}
    assert settings.save_values({"n_topics": 7, "device": "cpu"}, path)
    assert settings.load_values(path) == {"n_topics": 7, "device": "cpu"}
    path.write_text("{not json")
    assert settings.load_values(path) == {}
    path.write_text(json.dumps({"version": 999, "values": {"n_topics": 3}}))
    assert settings.load_values(path) == {}
    assert settings.values_path().parent == tmp_path / "cfg"


def test_preferences_come_from_the_npe2_configuration(plugin_settings, npe2pm):
    from napari.settings import get_plugin_settings
    from npe2 import PluginManifest

    assert settings.preferences() == settings.DEFAULT_PREFERENCES  # not registered
    npe2pm.register(PluginManifest.from_distribution("napari-topomics"))
    prefs = get_plugin_settings("napari-topomics").fitting
    assert settings.preferences() == settings.DEFAULT_PREFERENCES
    prefs.default_device = "cpu"
    prefs.torch_threads = 2
    prefs.remember_values = False
    assert settings.preferences() == settings.Preferences("cpu", 2, False)
    assert settings.save_values({"n_topics": 5}) is False  # not remembered
    assert settings.load_values() == {}
