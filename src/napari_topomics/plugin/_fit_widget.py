"""The "Topic model" dock widget: choose cells and options, train without freezing napari.

Run trains in a napari generator worker (:mod:`._worker`) with a determinate progress bar,
a live loss readout and curve, and a Stop button that ends training after the current
minibatch. The run is deliberately not listed in napari's activity dock: while a napari
progress is open, the dock's status-bar spinner repaints the main window ~30 times a second
with the GIL held, which made a fit in the viewer twice as slow as headless (issue 19).
A finished run is painted with ``add_result_layers``; a stopped or failed run changes
nothing. "Save to store" writes the run into the tissue's SpatialData store
(:mod:`._save`). The values persist between sessions (:mod:`._settings`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..io._errors import TopomicsInputError
from . import _keys as keys
from . import _settings as settings
from ._fit_curve import LossCurve
from ._fit_form import DEFAULTS, REMEMBERED, FitForm
from ._fit_options import (
    TableSource,
    build_config,
    count_layers,
    ids_problem,
    inspect_modalities,
    run_problem,
    source_from_layer,
)
from ._fit_saving import SavingMixin
from ._save import MODEL_KEY
from ._sweep_section import SweepSection
from ._worker import FitJob, JobResult, start_fit_worker, warm_labels_colormap

if TYPE_CHECKING:
    import napari

_CELL_LAYERS = ("Labels", "Points", "Shapes")
_PROBLEM_STYLE = "color: #e8a33d;"


def _warm_up(layer):
    """What the training thread prepares for painting ``layer`` (None: nothing)."""
    if type(layer).__name__ != "Labels":
        return None
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return partial(warm_labels_colormap, data.dtype)


class TopicModelWidget(SavingMixin, QWidget):
    """Fit the multimodal topic model on the cells of a labels (or points) layer.

    Parameters
    ----------
    napari_viewer
        The viewer (napari injects it).
    values_path
        JSON file of the remembered values (default: :func:`._settings.values_path`).

    Attributes
    ----------
    progress_interval, switch_interval, nice
        Seconds between two progress updates, Python's thread switch interval while
        training, and the niceness of the training thread (see :class:`._worker.FitJob`).
    """

    progress_interval: float = 0.5
    switch_interval: float | None = 0.001
    nice: int = 0

    def __init__(self, napari_viewer: napari.Viewer, values_path: str | Path | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self._values_path = None if values_path is None else Path(values_path)
        self._layers: list[Any] = []
        self.source: TableSource | None = None
        self.source_error: str | None = None
        self.infos: list = []
        self.problem: str | None = None
        self.job: FitJob | None = None
        self.worker = None
        self.result: JobResult | None = None
        self.saved: dict[str, Any] | None = None  # the run "Save to store" writes
        self._ids_cache: dict[tuple, str | None] = {}
        self._last_saved_values: dict[str, Any] | None = None

        self.form = FitForm()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save to store")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("")
        self.readout = QLabel("")
        self.curve = LossCurve()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sweep_section = SweepSection(self)
        self.choose_topics = QCollapsible("Choose topics")
        self.choose_topics.addWidget(self.sweep_section)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.stop_button, self.save_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        for part in (self.form, self.status):
            layout.addWidget(part)
        layout.addLayout(buttons)
        for part in (self.progress_bar, self.readout, self.curve, self.message,
                     self.choose_topics):
            layout.addWidget(part)
        layout.addStretch(1)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(300)
        self._save_timer.timeout.connect(self.save_values)
        self._load_values()
        self._connect()
        self.refresh_layers()

    # ------------------------------------------------------------------ setup
    def _load_values(self) -> None:
        from ..workflow import available_devices

        prefs = settings.preferences()
        self.form.set_devices(available_devices())
        self.form.set_values({**DEFAULTS, "device": prefs.default_device,
                              "threads": prefs.torch_threads})
        self.form.set_values(settings.load_values(self._values_path))

    def _connect(self) -> None:
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self.save)
        self.form.changed.connect(self.update_state)
        self.form.layer.currentIndexChanged.connect(self._on_layer_changed)
        self.form.table.currentIndexChanged.connect(self._on_table_changed)
        self.form.counts_layer.currentIndexChanged.connect(self._on_counts_changed)
        events = self.viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            getattr(events, name).connect(self.refresh_layers)
        group = settings.plugin_settings_group()
        if group is not None:
            for name in ("default_device", "torch_threads"):
                emitter = getattr(group.events, name, None)
                if emitter is not None:
                    emitter.connect(self._on_preference)

    def _on_preference(self, event) -> None:
        key = {"default_device": "device", "torch_threads": "threads"}.get(event.type)
        if key is not None:
            self.form.set_values({key: event.value})

    # ------------------------------------------------------------------ choices
    def current_layer(self):
        """The chosen labels/points layer, or None."""
        index = self.form.layer.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    def _preferred(self, candidates: list) -> Any:
        active = self.viewer.layers.selection.active
        mine = [ly for ly in candidates if keys.ROLE not in ly.metadata]
        with_data = [ly for ly in mine if ly.metadata.get(keys.SDATA) is not None
                     or ly.metadata.get(keys.SOURCE)]
        if active in with_data:
            return active
        return (with_data or mine or candidates or [None])[0]

    def refresh_layers(self, event=None) -> None:
        """List the viewer's labels/points/shapes layers, keeping the current choice."""
        current = self.current_layer()
        layers = [ly for ly in self.viewer.layers if type(ly).__name__ in _CELL_LAYERS]
        keep = current if current in layers else self._preferred(layers)
        self._layers = layers
        for layer in layers:
            layer.events.name.connect(self._on_rename)
        combo = self.form.layer
        combo.blockSignals(True)
        combo.clear()
        combo.addItems([ly.name for ly in layers])
        combo.setCurrentIndex(layers.index(keep) if keep in layers else -1)
        combo.blockSignals(False)
        if keep is not current or self.source is None and self.source_error is None:
            self._on_layer_changed()
        else:
            self.update_state()

    def _on_rename(self, event=None) -> None:
        for index, layer in enumerate(self._layers):
            self.form.layer.setItemText(index, layer.name)

    def _on_layer_changed(self, *_) -> None:
        layer = self.current_layer()
        self.source, self.source_error = None, None
        if layer is not None:
            try:
                self.source = source_from_layer(layer)
            except TopomicsInputError as err:
                self.source_error = str(err)
            except Exception as err:  # noqa: BLE001 - unreadable data is a message, not a crash
                self.source_error = f"Could not read the data of layer {layer.name!r}: {err}"
        remembered = self.form.table.currentText()
        self._fill(self.form.table, self.source.tables if self.source else [], remembered)
        self._on_table_changed()

    def _on_table_changed(self, *_) -> None:
        table = self.form.table.currentText()
        names = count_layers(self.source.sdata, table) if self.source and table else ["X"]
        self._fill(self.form.counts_layer, names, self.form.counts_layer.currentText())
        self._on_counts_changed()

    def _on_counts_changed(self, *_) -> None:
        table = self.form.table.currentText()
        self.infos = []
        if self.source is not None and table:
            try:
                self.infos = inspect_modalities(
                    self.source.sdata, table, self.form.counts_layer.currentText()
                )
            except TopomicsInputError as err:
                self.source_error = str(err)
        self.form.set_modalities(self.infos)
        self.update_state()

    @staticmethod
    def _fill(combo, names: list[str], keep: str) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if keep in names:
            combo.setCurrentIndex(names.index(keep))
        combo.blockSignals(False)

    def _ids_check(self, layer, source: TableSource, table: str) -> str | None:
        key = (id(layer), id(layer.data), id(source.sdata), table)
        if key not in self._ids_cache:
            self._ids_cache = {key: ids_problem(layer, source, table)}
        return self._ids_cache[key]

    def update_state(self, *_) -> None:
        """Re-check the choice: enable Run or say why not; remember the values."""
        values = self.form.values()
        self.problem = run_problem(self.current_layer(), self.source, self.source_error,
                                   values, self.infos, self._ids_check)
        fitting = self.job is not None
        running = fitting or self.sweep_section.busy
        self.run_button.setEnabled(not running and self.problem is None)
        self.stop_button.setEnabled(fitting and not self.job.stop_requested)
        self.save_button.setEnabled(not running and self.saved is not None)
        self.form.setEnabled(not running)
        self.sweep_section.update_state(fitting, self.problem)
        if self.problem:
            self.status.setStyleSheet(_PROBLEM_STYLE)
            self.status.setText(self.problem)
        else:
            self.status.setStyleSheet("")
            n = self.source.sdata.tables[values["table"]].n_obs
            self.status.setText(f"Ready: {values['n_topics']} topics on {n} cells of table "
                                f"{values['table']!r} ({', '.join(values['modalities'])}).")
        self._save_timer.start()

    # ------------------------------------------------------------------ settings
    def values(self) -> dict[str, Any]:
        """The widget's current values."""
        return self.form.values()

    def save_values(self) -> None:
        """Remember the values now (also done 0.3 s after every change)."""
        values = {k: v for k, v in self.form.values().items() if k in REMEMBERED}
        if values != self._last_saved_values:
            settings.save_values(values, self._values_path)
            self._last_saved_values = values

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start training the current choice in a worker thread."""
        self.update_state()
        if self.problem is not None or self.job is not None or self.sweep_section.busy:
            return
        values = self.form.values()
        config = build_config(values, self.source)
        self._run_layer, self._run_points = self.current_layer(), bool(values["points"])
        self.job = FitJob(self.source.sdata, config, source_label=self.source.path,
                          interval=self.progress_interval,
                          switch_interval=self.switch_interval, nice=self.nice,
                          after_fit=_warm_up(self._run_layer))
        self._run_source = self.source
        self.result = None
        self.curve.clear()
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting…")
        self.readout.setText("")
        self._say(f"Training {config.n_topics} topics for {config.n_epochs} epochs…")
        self.worker = start_fit_worker(self.job, on_event=self._on_event,
                                       on_done=self._on_done, start=False)
        self.worker.finished.connect(self._on_finished)
        self.update_state()
        self.save_values()
        self.worker.start()

    def stop(self) -> None:
        """End training after the current minibatch; nothing the user has is changed."""
        if self.job is not None and not self.job.stop_requested:
            self.job.request_stop()
            self._say("Stopping after the current minibatch…")
            self.update_state()

    def _on_event(self, ev) -> None:
        self.progress_bar.setValue(int(round(ev.fraction * 1000)))
        self.progress_bar.setFormat(f"epoch {ev.epoch + 1}/{ev.n_epochs}  %p%")
        epoch = "" if ev.epoch_loss is None else f" · epoch loss {ev.epoch_loss:.1f}"
        self.readout.setText(f"-ELBO/cell {ev.loss:.1f}{epoch} · {ev.elapsed_s:.0f} s, "
                             f"~{ev.eta_s:.0f} s left")
        self.curve.add(ev.step, ev.loss, ev.step if ev.epoch_loss is not None else None,
                       ev.epoch_loss)

    def _on_done(self, result: JobResult) -> None:
        self.result = result
        if result.message is not None:
            self._fail(result.message)
        elif result.stopped:
            event = self.job.last_event if self.job else None
            where = f" in epoch {event.epoch + 1} of {event.n_epochs}" if event else ""
            self._say(f"Stopped{where} after {result.elapsed_s:.1f} s; nothing was changed.")
        else:
            self.paint_outcome(result.outcome, self._run_layer, self._run_points,
                               self._run_source, result)

    def paint_outcome(self, outcome, layer, points: bool, source, result: JobResult) -> None:
        """Paint a finished run's results over ``layer`` and keep it for "Save to store"."""
        from ._result_layers import add_result_layers

        layer = layer if layer in self.viewer.layers else None
        try:
            layers = add_result_layers(self.viewer, outcome.results, layer, points=points)
        except TopomicsInputError as err:
            self._fail(str(err))
            return
        for painted in layers:
            painted.metadata[MODEL_KEY] = outcome.model
        self.saved = {"results": outcome.results, "model": outcome.model, "source": source}
        names = ", ".join(repr(ly.name) for ly in layers)
        self._say(f"Done: run {outcome.results.run_name!r}, {outcome.results.n_topics} topics "
                  f"on {len(outcome.results.proportions)} cells in {result.elapsed_s:.1f} s; "
                  f"painted {names}.")

    def _on_finished(self) -> None:
        if self.result is None and self.worker is not None and self.worker.abort_requested:
            self._say("Training was cancelled; nothing was changed.")
        elif self.result is None:
            self._fail("Training ended unexpectedly; see napari's log for details.")
        self.job, self.worker = None, None
        self.update_state()
