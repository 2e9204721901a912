"""Per-feature mean/std normalisation whose statistics travel with the run.

The statistics are computed once over the training set, kept as variables (so
they are saved in every checkpoint and restored for inference) and written to
`feature_stats.json` in the run directory for people to read.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf


class FeatureNormalization(tf.Module):
    """(x - mean) / std over the last axis, and its inverse."""

    def __init__(self, size: int, name: str | None = None):
        super().__init__(name=name)
        self.mean = tf.Variable(tf.zeros([size]), trainable=False, name="mean")
        self.std = tf.Variable(tf.ones([size]), trainable=False, name="std")

    def assign(self, mean, std):
        std = np.maximum(np.asarray(std, np.float32), 1e-2)
        self.mean.assign(np.asarray(mean, np.float32))
        self.std.assign(std)

    def __call__(self, x):
        return (tf.cast(x, tf.float32) - self.mean) / self.std

    def inverse(self, y):
        return tf.cast(y, tf.float32) * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.numpy().round(6).tolist(), "std": self.std.numpy().round(6).tolist()}


def save_stats(path: str, normalizers: dict):
    """Writes {name: {mean, std}} for each FeatureNormalization as JSON."""
    with open(path, "w") as f:
        json.dump({name: norm.to_dict() for name, norm in normalizers.items()}, f, indent=1)


def feature_stats(batches) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over (features [B, T, F], mask [B, T]) pairs, counting
    only frames where the mask is true (padding never enters the statistics)."""
    total = total_sq = count = 0.0
    for x, mask in batches:
        x = np.asarray(x, np.float64)[np.asarray(mask, bool)]
        total = total + x.sum(0)
        total_sq = total_sq + (x ** 2).sum(0)
        count += x.shape[0]
    if not count:
        raise ValueError("feature_stats: no valid frames (is the training set empty?)")
    mean = total / count
    return mean.astype(np.float32), np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0)).astype(np.float32)
