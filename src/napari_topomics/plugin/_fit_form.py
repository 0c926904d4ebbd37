"""The input form of the "Topic model" widget: what to fit and how.

Plain Qt widgets (via qtpy) and superqt's ``QCollapsible`` for the advanced options. The
form only holds values: :meth:`FitForm.values` / :meth:`FitForm.set_values` read and
write them as a JSON-friendly dict, and :attr:`FitForm.changed` fires on every edit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..models._options import AGGREGATIONS, PRIOR_TYPES, WEIGHT_MODES
from ._fit_options import LIKELIHOOD_CHOICES, ModalityInfo
from ._fit_spatial import SPATIAL_DEFAULTS, SpatialOptions

#: Values of a fresh widget (before preferences and remembered values apply).
DEFAULTS: dict[str, Any] = {
    "n_topics": 10,
    "n_epochs": 100,
    **SPATIAL_DEFAULTS,
    "device": "auto",
    "seed": 0,
    "run_name": "topomics",
    "batch_size": 128,
    "n_hidden": 128,
    "weight_mode": "cell",
    "aggregation_type": "moe",
    "topic_feature_prior_type": "logistic_normal",
    "learnable_dispersion": False,
    "threads": 1,
    "n_top": 20,
    "points": False,
    "counts_layer": "X",
    "likelihoods": {},
    "modalities_off": [],
}
#: Values remembered between sessions (the data-dependent choices are not).
REMEMBERED = tuple(DEFAULTS)


def _spin(low: int, high: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    return box


def _combo(items: Sequence[str], tip: str) -> QComboBox:
    box = QComboBox()
    box.addItems(list(items))
    box.setToolTip(tip)
    return box


def _set_combo(box: QComboBox, value: Any) -> None:
    """Select the item whose data (else text) is ``value``; keep the selection otherwise."""
    index = box.findData(value) if value is not None else -1
    if index < 0:
        index = box.findText(str(value)) if value is not None else box.findData(None)
    if index >= 0:
        box.setCurrentIndex(index)


class ModalityRow:
    """The check box and likelihood choice of one modality."""

    def __init__(self, info: ModalityInfo) -> None:
        self.info = info
        self.check = QCheckBox(info.name)
        self.check.setChecked(True)
        self.check.setToolTip(f"Fit modality {info.name!r} ({info.n_features} features)")
        self.features = QLabel(f"{info.n_features} features")
        self.likelihood = QComboBox()
        auto = f"auto ({info.inferred})" if info.inferred else "auto (not counts)"
        self.likelihood.addItem(auto, None)
        for name in LIKELIHOOD_CHOICES:
            self.likelihood.addItem(name, name)
        self.likelihood.setToolTip(
            "Likelihood of this modality; 'auto' is what the model infers from the data."
        )


class FitForm(QWidget):
    """Inputs of a fitting run.

    Attributes
    ----------
    layer, table, counts_layer
        Which cells (labels/points layer), which table, where the counts are (X/a layer).
    rows
        ``{modality: ModalityRow}`` of the current table.
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[str, ModalityRow] = {}
        self._saved_likelihoods: dict[str, str | None] = {}
        self._saved_off: set[str] = set()

        self.layer = _combo([], "The labels (or points) layer of the cells to fit")
        self.table = _combo([], "The table of the cells' features (annotating the layer)")
        self.counts_layer = _combo(["X"], "Where the raw counts are: X or a layer of the table")
        cells = QFormLayout()
        cells.addRow("Cells", self.layer)
        cells.addRow("Table", self.table)
        cells.addRow("Counts", self.counts_layer)

        self.modality_box = QGroupBox("Modalities and likelihoods")
        self.modality_grid = QGridLayout(self.modality_box)

        self.n_topics = _spin(2, 500, "Number of topics to find")
        self.n_epochs = _spin(1, 100_000, "Training epochs (passes over all cells)")
        self.spatial_options = SpatialOptions()
        self.spatial = self.spatial_options.spatial
        self.device = _combo(["auto"], "Device to train on (only those found here are listed)")
        self.seed = _spin(0, 2**31 - 1, "Random seed (same seed and options: same result)")
        self.run_name = QLineEdit()
        self.run_name.setToolTip("Name of the run; saved as table topomics_<name>")
        model = QFormLayout()
        model.addRow("Topics", self.n_topics)
        model.addRow("Epochs", self.n_epochs)
        model.addRow("Device", self.device)
        model.addRow("Seed", self.seed)
        model.addRow("Run name", self.run_name)
        model.addRow(self.spatial_options)

        self.advanced = QCollapsible("Advanced")
        self.batch_size = _spin(1, 1_000_000, "Cells per minibatch")
        self.n_hidden = _spin(1, 4096, "Hidden units of the encoders")
        self.weight_mode = _combo(WEIGHT_MODES, "How modalities are weighted per cell")
        self.aggregation_type = _combo(AGGREGATIONS, "How the modality encoders are combined")
        self.topic_feature_prior_type = _combo(PRIOR_TYPES, "Prior of topic-feature profiles")
        self.learnable_dispersion = QCheckBox("Learnable dispersion (negative binomial)")
        self.threads = _spin(1, 256, "Torch CPU threads while training (1 keeps napari smooth)")
        self.n_top = _spin(1, 1000, "Top features kept per topic and modality")
        self.points = QCheckBox("Also show cells as points at their centroids")
        inner = QWidget()
        adv = QFormLayout(inner)
        adv.addRow("Batch size", self.batch_size)
        adv.addRow("Hidden units", self.n_hidden)
        adv.addRow("Weight mode", self.weight_mode)
        adv.addRow("Aggregation", self.aggregation_type)
        adv.addRow("Topic prior", self.topic_feature_prior_type)
        adv.addRow("Torch threads", self.threads)
        adv.addRow("Top features", self.n_top)
        adv.addRow(self.learnable_dispersion)
        adv.addRow(self.points)
        self.advanced.addWidget(inner)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(cells)
        layout.addWidget(self.modality_box)
        layout.addLayout(model)
        layout.addWidget(self.advanced)
        self._connect()
        self.set_values(DEFAULTS)

    def _connect(self) -> None:
        for box in (self.n_topics, self.n_epochs, self.seed, self.batch_size, self.n_hidden,
                    self.threads, self.n_top):
            box.valueChanged.connect(self.changed)
        for combo in (self.device, self.weight_mode, self.aggregation_type,
                      self.topic_feature_prior_type):
            combo.currentIndexChanged.connect(self.changed)
        self.spatial_options.changed.connect(self.changed)
        for check in (self.learnable_dispersion, self.points):
            check.toggled.connect(self.changed)
        self.run_name.textChanged.connect(self.changed)

    # ------------------------------------------------------------------ modalities
    def set_modalities(self, infos: Sequence[ModalityInfo]) -> None:
        """Show one row per modality, restoring remembered ticks and likelihoods."""
        self._remember_rows()
        while self.modality_grid.count():
            item = self.modality_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.rows = {}
        for i, info in enumerate(infos):
            row = ModalityRow(info)
            row.check.setChecked(info.name not in self._saved_off)
            _set_combo(row.likelihood, self._saved_likelihoods.get(info.name))
            row.check.toggled.connect(self.changed)
            row.likelihood.currentIndexChanged.connect(self.changed)
            self.modality_grid.addWidget(row.check, i, 0)
            self.modality_grid.addWidget(row.features, i, 1)
            self.modality_grid.addWidget(row.likelihood, i, 2)
            self.rows[info.name] = row
        if not infos:
            self.modality_grid.addWidget(QLabel("(no table chosen)"), 0, 0)

    def _remember_rows(self) -> None:
        for name, row in self.rows.items():
            self._saved_likelihoods[name] = row.likelihood.currentData()
            if row.check.isChecked():
                self._saved_off.discard(name)
            else:
                self._saved_off.add(name)

    def set_devices(self, devices: Sequence[str]) -> None:
        """List ``auto`` and the devices found on this machine."""
        current = self.device.currentText()
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItems(["auto", *[d for d in devices if d != "auto"]])
        _set_combo(self.device, current)
        self.device.blockSignals(False)

    # ------------------------------------------------------------------ values
    def values(self) -> dict[str, Any]:
        """The form's values (JSON-friendly; see :data:`DEFAULTS` for the keys)."""
        self._remember_rows()
        return {
            "table": self.table.currentText() or None,
            "counts_layer": self.counts_layer.currentText() or "X",
            "modalities": [n for n, r in self.rows.items() if r.check.isChecked()],
            "modalities_off": sorted(self._saved_off),
            "likelihoods": dict(self._saved_likelihoods),
            "n_topics": self.n_topics.value(),
            "n_epochs": self.n_epochs.value(),
            **self.spatial_options.values(),
            "device": self.device.currentText(),
            "seed": self.seed.value(),
            "run_name": self.run_name.text().strip(),
            "batch_size": self.batch_size.value(),
            "n_hidden": self.n_hidden.value(),
            "weight_mode": self.weight_mode.currentText(),
            "aggregation_type": self.aggregation_type.currentText(),
            "topic_feature_prior_type": self.topic_feature_prior_type.currentText(),
            "learnable_dispersion": self.learnable_dispersion.isChecked(),
            "threads": self.threads.value(),
            "n_top": self.n_top.value(),
            "points": self.points.isChecked(),
        }

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Apply the known entries of ``values`` (unknown or invalid ones are ignored)."""
        spins = {"n_topics": self.n_topics, "n_epochs": self.n_epochs, "seed": self.seed,
                 "batch_size": self.batch_size, "n_hidden": self.n_hidden,
                 "threads": self.threads, "n_top": self.n_top}
        combos = {"device": self.device, "weight_mode": self.weight_mode,
                  "aggregation_type": self.aggregation_type,
                  "topic_feature_prior_type": self.topic_feature_prior_type,
                  "counts_layer": self.counts_layer, "table": self.table}
        checks = {"learnable_dispersion": self.learnable_dispersion, "points": self.points}
        self.spatial_options.set_values(values)
        for key, value in values.items():
            if key in spins and isinstance(value, int) and not isinstance(value, bool):
                spins[key].setValue(value)
            elif key in combos and value is not None:
                _set_combo(combos[key], value)
            elif key in checks and isinstance(value, bool):
                checks[key].setChecked(value)
            elif key == "run_name" and isinstance(value, str):
                self.run_name.setText(value)
            elif key == "likelihoods" and isinstance(value, Mapping):
                self._saved_likelihoods.update({str(k): v for k, v in value.items()})
                for name, row in self.rows.items():
                    _set_combo(row.likelihood, self._saved_likelihoods.get(name))
            elif key == "modalities_off" and isinstance(value, list | tuple):
                self._saved_off = {str(v) for v in value}
                for name, row in self.rows.items():
                    row.check.setChecked(name not in self._saved_off)
