"""Spectrograms and attention alignments as labelled pictures, for trackers and PNG files."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, yticklabels=None) -> Figure:
    m = np.asarray(matrix, np.float64).T
    figure = Figure(figsize=(max(4.0, min(12.0, m.shape[1] / 15)), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(np.where(np.isfinite(m), m, np.nan), origin="lower", aspect="auto",
                        interpolation="nearest", cmap="viridis")
    figure.colorbar(image, ax=axes, pad=0.01)
    axes.set_title(title if len(title) <= 90 else title[:87] + "...", fontsize=9)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if yticklabels is not None and len(yticklabels) <= 60:
        axes.set_yticks(range(len(yticklabels)), [c if c.strip() else "·" for c in yticklabels], fontsize=6)
    return figure


def plot(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, yticklabels=None) -> np.ndarray:
    """uint8 RGB [height, width, 3] picture of a 2-D array given as [time, channels]: time
    along the x axis, channel 0 at the bottom, with title, axis labels and a colour bar;
    `yticklabels` names each channel (e.g. the characters of an alignment)."""
    figure = _figure(matrix, title, xlabel, ylabel, yticklabels)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_plot(path: str, matrix: np.ndarray, title: str, xlabel: str, ylabel: str, yticklabels=None) -> str:
    """Writes `plot(...)` to a PNG file."""
    _figure(matrix, title, xlabel, ylabel, yticklabels).savefig(path)
    return path
