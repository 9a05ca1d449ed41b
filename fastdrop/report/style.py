"""The one figure style of the report (figures and decision traces alike): size, layout, grid.
Matplotlib is imported only when a figure is drawn."""
from __future__ import annotations


def new_figure(ncols: int = 1):
    """A figure with `ncols` panels side by side, off-screen (Agg), and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5 if ncols == 1 else 13, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes
