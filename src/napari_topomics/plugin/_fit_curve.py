"""A small live curve of the training loss (negative ELBO per cell), drawn with QPainter.

Cheap to repaint (a polyline of at most a few hundred points), so it can follow training
without slowing napari down.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

_MAX_POINTS = 400


class LossCurve(QWidget):
    """Minibatch losses (thin) and per-epoch losses (bold) of the current run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.batch: list[tuple[float, float]] = []
        self.epochs: list[tuple[float, float]] = []
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Training loss (negative ELBO per cell; lower is better)")

    def clear(self) -> None:
        """Forget the curve (a new run starts)."""
        self.batch, self.epochs = [], []
        self.update()

    def add(self, step: float, loss: float, epoch_step: float | None, epoch_loss: float | None):
        """Add a minibatch loss at ``step`` and, when new, an epoch loss."""
        if math.isfinite(loss):
            self.batch.append((step, loss))
            if len(self.batch) > _MAX_POINTS:
                self.batch = self.batch[::2]
        if epoch_loss is not None and math.isfinite(epoch_loss) and epoch_step is not None:
            if not self.epochs or self.epochs[-1][1] != epoch_loss:
                self.epochs.append((epoch_step, epoch_loss))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        points = self.batch + self.epochs
        if len(points) < 2:
            return
        xs = [p[0] for p in points]
        ys = sorted(p[1] for p in points)
        # robust y-range: ignore the first few very high losses of a fresh model
        low, high = ys[0], ys[min(len(ys) - 1, int(0.95 * (len(ys) - 1)))]
        x0, x1 = min(xs), max(xs)
        w, h, pad = self.width(), self.height(), 3.0
        span_x = (x1 - x0) or 1.0
        span_y = (high - low) or 1.0

        def to_px(x: float, y: float) -> QPointF:
            y = min(max(y, low), high)
            return QPointF(
                pad + (x - x0) / span_x * (w - 2 * pad),
                h - pad - (y - low) / span_y * (h - 2 * pad),
            )

        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for series, colour, width in ((self.batch, "#888888", 1.0), (self.epochs, "#f0a030", 2.0)):
            if len(series) >= 2:
                painter.setPen(QPen(QColor(colour), width, Qt.PenStyle.SolidLine))
                painter.drawPolyline(QPolygonF([to_px(x, y) for x, y in series]))
        painter.end()
