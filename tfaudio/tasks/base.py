"""The Task contract: what the trainer and the inference commands ask of a model family.

A task turns a batch from its DataSource into losses and metrics for a model, and
knows how to use a trained model (synthesize, separate, ...). Subclass `Task` and
override `loss`, `metrics` and `build_for_inference`; the optional parts have no-op
defaults, so the trainer never probes with `hasattr`.

Shapes: B is the per-replica batch. Every per-example value is a float tensor [B]
(float32 is expected; other floats are cast); the trainer sums them over the batch
and divides by the global batch, so a loss is a mean over examples.

The device contract: `loss` and `metrics` run inside the step that XLA compiles on a
TPU (and on request elsewhere): static shapes, no strings, no numpy_function. Work
that needs the host (decoding to text, distances in numpy) returns its inputs from
`metrics` under "host/<name>" and is finished in `host_metrics`. A validation batch may
hold "valid" [B] (0 on rows that only complete a static batch): the trainer leaves those
rows out of every metric, so tasks ignore it.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tfaudio.audio.normalization import feature_stats
from tfaudio.errors import ConfigError
from tfaudio.models.tracing import traced_method


def training_statistics(data, examples: int, features) -> dict:
    """{name: (mean, std)} per feature over the first `examples` of the seed-0 training
    stream (at least one batch of 16), where `features(batch)` gives {name: (values
    [B, T, F], mask [B, T])}: what a task's `initialize` normalises by (masked frames,
    i.e. padding, never count)."""
    collected: dict = {}
    for batch in data.train(16, seed=0).take(max(1, math.ceil(examples / 16))):
        for name, (values, mask) in features(batch).items():
            collected.setdefault(name, []).append((np.asarray(values), np.asarray(mask)))
    return {name: feature_stats(pairs) for name, pairs in collected.items()}


def inference(model):
    """`model(*inputs, training=False)`, traced once per Keras model (eagerly, recurrent
    layers run step by step: Open-Unmix separated about 20x slower); other callables as
    they are."""
    if not isinstance(model, keras.Model):
        return lambda *inputs: model(*inputs, training=False)
    call = traced_method(model, "__call__")
    return lambda *inputs: call(*inputs, training=False)


class Task:
    """Losses, metrics and inference for one model family.

    Attributes:
      state: a tf.Module of variables the task computes from data (e.g. feature
        statistics) and keeps in every checkpoint under `task/`, or None.
    """

    state: tf.Module | None = None
    xla: bool = False  # set by the trainer: the step is XLA-compiled, pick ops XLA can compile

    def loss(self, model, batch: dict, training: bool):
        """(per-example loss [B], {term name: per-example term [B]}) for one batch; traced."""
        raise NotImplementedError

    def metrics(self, model, batch: dict) -> dict:
        """{metric name: per-example value [B] (or [B, n])} on a validation batch; traced
        and compiled like the train step. Include "loss". Values for `host_metrics` go
        under "host/<name>" (any shape with B first)."""
        raise NotImplementedError

    def host_metrics(self, values: dict) -> dict:
        """{metric name: per-example value [B]} computed on the host (numpy, or eager
        TensorFlow on the CPU) from one replica's "host/" values of `metrics`, named
        without the prefix; none by default."""
        return {}

    def corpus_metrics(self, means: dict) -> dict:
        """Metrics of a whole split from the means of `metrics` over its examples (e.g. an
        error rate as summed edits over summed reference lengths); the means by default."""
        return means

    def build_for_inference(self, model) -> None:
        """Calls `model` once on a minimal input so every variable exists before a restore."""
        raise NotImplementedError

    def initialize(self, data, model_dir: str) -> None:
        """Computes `state` from the training data once, on a fresh run (not on resume)."""

    def initialize_model(self, model) -> None:
        """Sets model weights that start from `state` (e.g. a learned input normalisation);
        called once the model is built, on a fresh run only."""

    def split_summaries(self, split: str, metrics: dict, trackers, step: int) -> None:
        """Sends pictures of one split's evaluation (e.g. a confusion matrix) to `trackers`."""

    def export_endpoints(self, model) -> dict:
        """{signature name: (function, [tf.TensorSpec ...])} for `python -m tfaudio.export`:
        functions of audio or text (the features computed inside) returning dicts of tensors."""
        raise ConfigError(f"{type(self).__name__} cannot be exported")

    def export_assets(self, model, run_dir: str, out_dir: str) -> list[str]:
        """Writes files the exported signatures need beside them (a vocabulary, label
        names) from the task or the run directory; returns their names."""
        return []

    def summaries(self, model, batch: dict, trackers, step: int) -> None:
        """Sends images and audio for one validation batch to `trackers` (after evaluation)."""
