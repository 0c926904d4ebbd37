"""Matplotlib figures inside docks, drawn in the viewer's theme colours."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

__all__ = ["Theme", "figure_canvas", "style_axes"]


class Theme:
    """Background, text and grid colours of a napari theme (hex strings)."""

    def __init__(self, viewer: napari.Viewer | None = None) -> None:
        from napari.utils.theme import get_theme

        name = getattr(viewer, "theme", None) or "dark"
        try:
            theme = get_theme(name)
        except (KeyError, ValueError):
            theme = get_theme("dark")
        self.background = theme.background.as_hex()
        self.text = theme.text.as_hex()
        self.grid = theme.primary.as_hex()


def figure_canvas(
    viewer: napari.Viewer | None, width: float = 4.0, height: float = 3.0
) -> tuple[FigureCanvasQTAgg, Theme]:
    """A Qt canvas holding an empty matplotlib figure in the viewer's theme."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    theme = Theme(viewer)
    figure = Figure(figsize=(width, height), facecolor=theme.background, layout="constrained")
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(int(height * 60))
    return canvas, theme


def style_axes(ax: Axes, theme: Theme) -> None:
    """Theme colours for an axes' face, spines, ticks and labels."""
    ax.set_facecolor(theme.background)
    for spine in ax.spines.values():
        spine.set_color(theme.text)
    ax.tick_params(colors=theme.text, labelsize=8)
    ax.xaxis.label.set_color(theme.text)
    ax.yaxis.label.set_color(theme.text)
    ax.title.set_color(theme.text)
