"""The "Training curve" dock: the run's negative ELBO per epoch (lower is better)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ._follow import ResultsFollower
from ._mpl import figure_canvas, style_axes

if TYPE_CHECKING:
    import napari

__all__ = ["ElboCurveWidget"]


class ElboCurveWidget(QWidget, ResultsFollower):
    """The shown run's training (and validation) negative ELBO per cell, by epoch.

    Parameters
    ----------
    napari_viewer
        The viewer whose result layer the dock follows.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.canvas, self.theme = figure_canvas(napari_viewer, 4.0, 2.6)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.canvas)
        self._follow(napari_viewer)

    def curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """``{column: (epochs, values)}`` as drawn."""
        results = self.results
        if results is None:
            return {}
        history = results.elbo_history
        epochs = [int(e) for e in history.index]
        return {str(c): (epochs, [float(v) for v in history[c]]) for c in history.columns}

    def refresh(self) -> None:
        """Redraw for the shown run."""
        figure = self.canvas.figure
        figure.clear()
        curves = self.curves()
        if not curves:
            self.message.setText("No topic model run in the viewer.")
            self.canvas.draw_idle()
            return
        ax = figure.add_subplot(1, 1, 1)
        style_axes(ax, self.theme)
        for name, (epochs, values) in curves.items():
            ax.plot(epochs, values, marker="o" if len(epochs) < 20 else None, markersize=3,
                    label=name.replace("elbo_", ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel("-ELBO per cell")
        legend = ax.legend(fontsize=8, frameon=False)
        for text in legend.get_texts():
            text.set_color(self.theme.text)
        last = curves["elbo_train"][1][-1] if "elbo_train" in curves else None
        run = self.results.run_name
        self.message.setText(
            f"Run {run}: {len(next(iter(curves.values()))[0])} epochs"
            + (f", last training value {last:.4g} (lower is better)" if last is not None else "")
        )
        self.canvas.draw_idle()
