"""The "Choose topics" section of the Topic model widget: a topic sweep in a worker.

Sweep fits every K of the range with several seeds on the widget's current choice of cells
and options (:func:`~napari_topomics.workflow.sweep_tissue`, in a napari worker, with
progress and Stop), draws the held-out perplexity and the stability against K with the
recommended K marked, and sets the Topics box to that K. Paint shows any fitted K on the
tissue without training again (:func:`~napari_topomics.workflow.sweep_outcome`: the fit
infers every cell's proportions, the held-out ones included).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..io._errors import TopomicsInputError
from ._mpl import figure_canvas, style_axes
from ._sweep_job import SweepProgress, SweepRun, sweep_job
from ._worker import JobResult, error_message, start_fit_worker

if TYPE_CHECKING:
    from ._fit_widget import TopicModelWidget

#: The range offered at first (the CLI's ``fit --topics auto`` range).
DEFAULT_RANGE = "4,6,8,10,12,16"
_PROBLEM_STYLE = "color: #e8a33d;"


def default_processes() -> int:
    """Worker processes offered at first: every core but one (napari keeps one), 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 1) - 1))


class SweepSection(QWidget):
    """Sweep a range of topic numbers, show the curves, recommend and paint a K.

    Parameters
    ----------
    owner
        The Topic model widget whose cells, options and painting the sweep uses.
    """

    def __init__(self, owner: TopicModelWidget) -> None:
        super().__init__()
        self.owner = owner
        self.job = None
        self.worker = None
        self.run: SweepRun | None = None
        self.message_text = ""
        self._paint_worker = None
        self._target: tuple[Any, bool, Any] | None = None  # layer, points, source

        self.topics = QLineEdit(DEFAULT_RANGE)
        self.topics.setToolTip("Numbers of topics to fit: START:END[:STEP] or a list (4,6,8)")
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 10)
        self.seeds.setValue(2)
        self.seeds.setToolTip("Restarts per number of topics; the stability needs 2 or more")
        self.processes = QSpinBox()
        self.processes.setRange(1, max(1, os.cpu_count() or 1))
        self.processes.setValue(default_processes())
        self.processes.setToolTip("Fits run side by side in this many processes (1 thread each)")
        form = QFormLayout()
        form.addRow("Topics to try", self.topics)
        form.addRow("Seeds per K", self.seeds)
        form.addRow("Processes", self.processes)

        self.sweep_button = QPushButton("Sweep")
        self.stop_button = QPushButton("Stop sweep")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("")
        self.canvas, self.theme = figure_canvas(owner.viewer, width=4.0, height=3.2)
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.fitted = QComboBox()
        self.fitted.setToolTip("A number of topics the sweep fitted")
        self.paint_button = QPushButton("Paint")
        self.paint_button.setToolTip("Paint this fit on the tissue (no new training)")
        self.message = QLabel("")
        self.message.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.sweep_button)
        buttons.addWidget(self.stop_button)
        paint = QHBoxLayout()
        paint.addWidget(QLabel("Fitted K"))
        paint.addWidget(self.fitted, 1)
        paint.addWidget(self.paint_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for part in (self.progress_bar, self.canvas, self.recommendation):
            layout.addWidget(part)
        layout.addLayout(paint)
        layout.addWidget(self.message)
        self.canvas.hide()

        self.sweep_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.paint_button.clicked.connect(self.paint)
        self.topics.textChanged.connect(lambda *_: self.owner.update_state())

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        """True while a sweep or a paint runs."""
        return self.job is not None or self._paint_worker is not None

    def topic_range(self) -> list[int]:
        """The K values asked for (``TopomicsInputError`` naming the box when invalid)."""
        from ..workflow import parse_topic_range

        return parse_topic_range(self.topics.text(), "Topics to try")

    def range_problem(self) -> str | None:
        """Why the range cannot be swept (None when it can)."""
        try:
            ks = self.topic_range()
        except TopomicsInputError as err:
            return str(err)
        source, table = self.owner.source, self.owner.form.values().get("table")
        if source is not None and table in getattr(source.sdata, "tables", {}):
            n_cells = source.sdata.tables[table].n_obs
            if max(ks) >= n_cells:
                return (f"Topics to try: {max(ks)} topics need more than {max(ks)} cells; "
                        f"table {table!r} has {n_cells}.")
        return None

    def update_state(self, fit_running: bool, problem: str | None) -> None:
        """Enable the buttons for the owner's state (``problem``: why Run is disabled)."""
        range_problem = None if self.busy else self.range_problem()
        idle = not fit_running and not self.busy
        self.sweep_button.setEnabled(idle and problem is None and range_problem is None)
        self.stop_button.setEnabled(self.job is not None and not self.job.stop_requested)
        self.paint_button.setEnabled(idle and self.fitted.count() > 0)
        for box in (self.topics, self.seeds, self.processes):
            box.setEnabled(idle)
        if range_problem:
            self.message.setStyleSheet(_PROBLEM_STYLE)
            self.message.setText(range_problem)
        else:
            self.message.setStyleSheet("")
            self.message.setText(self.message_text)

    def _say(self, text: str) -> None:
        self.message_text = text
        self.message.setStyleSheet("")
        self.message.setText(text)

    # ------------------------------------------------------------------ sweeping
    def start(self) -> None:
        """Sweep the range on the owner's current choice in a worker thread."""
        from ._fit_options import build_config

        owner = self.owner
        owner.update_state()
        if owner.problem is not None or self.busy or owner.job is not None:
            return
        if self.range_problem() is not None:
            return
        values = owner.form.values()
        config = build_config(values, owner.source)
        ks = self.topic_range()
        self._target = (owner.current_layer(), bool(values["points"]), owner.source)
        self.job = sweep_job(owner.source.sdata, config, ks, seeds=self.seeds.value(),
                             n_jobs=self.processes.value(), source_label=owner.source.path)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(f"0/{len(ks) * self.seeds.value()} fits")
        self._say(f"Sweeping K = {', '.join(map(str, ks))} with {self.seeds.value()} seeds "
                  f"each ({config.n_epochs} epochs per fit)…")
        self.worker = start_fit_worker(self.job, on_event=self._on_event, on_done=self._on_done,
                                       start=False)
        self.worker.finished.connect(self._on_finished)
        owner.update_state()
        self.worker.start()

    def stop(self) -> None:
        """End the sweep soon, keeping the fits finished so far."""
        if self.job is not None and not self.job.stop_requested:
            self.job.request_stop()
            self._say("Stopping the sweep; finished fits are kept…")
            self.owner.update_state()

    def _on_event(self, ev: SweepProgress) -> None:
        self.progress_bar.setValue(int(round(ev.fraction * 1000)))
        left = "" if ev.eta_s is None else f", ~{ev.eta_s:.0f} s left"
        self.progress_bar.setFormat(f"{ev.done}/{ev.total} fits · {ev.elapsed_s:.0f} s{left}")

    def _on_done(self, result: JobResult) -> None:
        if result.message is not None:
            self._say(f"Sweep failed: {result.message}")
            return
        self.show_run(result.outcome)

    def _on_finished(self) -> None:
        self.job, self.worker = None, None
        self.owner.update_state()

    def show_run(self, run: SweepRun) -> None:
        """Draw ``run``'s curves, list its fitted K and apply its recommendation."""
        self.run = run
        sweep = run.sweep
        fitted = sorted(int(k) for k in sweep.frame["K"].unique()) if len(sweep.frame) else []
        self.fitted.clear()
        self.fitted.addItems([str(k) for k in fitted])
        self.draw(sweep)
        k = sweep.recommended
        ended = "Stopped: kept" if run.stopped else "Fitted"
        if k is None:
            self.recommendation.setText(
                "No recommendation: the stability needs two finished seeds of a K."
            )
        else:
            self.fitted.setCurrentIndex(fitted.index(k))
            self.owner.form.set_values({"n_topics": k})
            self.recommendation.setText(f"Recommended: {k} topics. Why: {sweep.reason}.")
            self.recommendation.setToolTip(f"Rule: {sweep.rule}.")
        self._say(f"{ended} {len(sweep.frame)} fits of K = {', '.join(map(str, fitted))}"
                  f" in {sweep.frame['fit_seconds'].sum():.0f} s of fitting."
                  if fitted else "Stopped before any fit finished; nothing was kept.")

    def draw(self, sweep) -> None:
        """Held-out perplexity (relative to its best K) and stability against K."""
        figure = self.canvas.figure
        figure.clear()
        ppl, stab = figure.subplots(2, 1, sharex=True)
        frame = sweep.frame
        if len(frame):
            means = frame.groupby("K")[["perplexity", "stability"]].mean()
            best = means["perplexity"].min()
            ppl.plot(means.index, means["perplexity"] / best, marker="o", color="#4c9be8")
            ppl.set_ylabel("held-out\nperplexity", fontsize=8)
            stab.plot(means.index, means["stability"], marker="o", color="#f0a030")
            stab.axhline(sweep.stability_threshold, color=self.theme.text, linewidth=0.7,
                         linestyle=":")
            stab.set_ylabel("stability", fontsize=8)
            stab.set_xlabel("number of topics K", fontsize=8)
            stab.set_xticks(list(means.index))
        k = sweep.recommended
        for ax in (ppl, stab):
            style_axes(ax, self.theme)
            if k is not None:
                ax.axvline(k, color="crimson", linewidth=1.2, alpha=0.7)
        self.canvas.show()
        self.canvas.draw_idle()

    # ------------------------------------------------------------------ painting
    def paint(self) -> None:
        """Paint the chosen fitted K on the tissue in a worker (no training)."""
        from napari.qt.threading import create_worker

        from ..workflow import sweep_outcome

        if self.run is None or self.busy or not self.fitted.currentText():
            return
        k = int(self.fitted.currentText())
        run = self.run
        start = time.perf_counter()
        self._say(f"Painting the fit of {k} topics…")
        worker = create_worker(sweep_outcome, run.sweep, run.tissue, run.config, k,
                               _start_thread=False)
        worker.returned.connect(
            lambda outcome: self._painted(outcome, time.perf_counter() - start)
        )
        worker.errored.connect(lambda err: self._say(f"Painting failed: {error_message(err)}"))
        worker.finished.connect(self._paint_finished)
        self._paint_worker = worker
        self.owner.update_state()
        worker.start()

    def _painted(self, outcome, elapsed: float) -> None:
        layer, points, source = self._target or (None, False, None)
        self.owner.paint_outcome(outcome, layer, points, source,
                                 JobResult(outcome, None, False, elapsed))

    def _paint_finished(self) -> None:
        self._paint_worker = None
        self.owner.update_state()

