"""Spectrograms and attention alignments as RGB images for trackers and PNG files."""

from __future__ import annotations

import matplotlib
import numpy as np

matplotlib.use("Agg")


def heatmap(matrix: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """uint8 RGB [rows, cols, 3] of a 2-D array given as [time, channels]: time runs left to
    right and channel 0 sits at the bottom, as spectrograms and alignments are read."""
    m = np.asarray(matrix, np.float64).T[::-1]
    finite = np.isfinite(m)
    lo, hi = (m[finite].min(), m[finite].max()) if finite.any() else (0.0, 1.0)
    scaled = np.where(finite, (m - lo) / max(hi - lo, 1e-12), 0.0)
    return (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)


def save_png(path: str, matrix: np.ndarray, cmap: str = "viridis", min_size: int = 400):
    """Writes `heatmap(matrix)` to a PNG file, each cell enlarged so the longer side
    is at least `min_size` pixels."""
    import matplotlib.image

    rgb = heatmap(matrix, cmap)
    scale = max(1, min_size // max(rgb.shape[:2]))
    matplotlib.image.imsave(path, np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1))
