"""Exponential moving average of all float model variables (BatchNorm statistics included)."""

from __future__ import annotations

import tensorflow as tf

from tfaudio.errors import ConfigError
from tfaudio.models.weights import float_names


class WeightEMA:
    """Shadow copies, by the model's variable names, updated after every applied step.

    With warm-up, the decay used at update k is min(decay, (1 + k) / (10 + k)), so
    early averages are not dominated by the random initialisation (debiasing).
    Call inside the strategy scope that owns the model.
    """

    def __init__(self, named_variables: dict, decay: float = 0.999, warmup: bool = True):
        if not 0 < decay < 1:
            raise ConfigError(f"StepOptions.ema_decay={decay} must lie in (0, 1)")
        self.decay, self.warmup = decay, warmup
        names = float_names(named_variables)
        self._sources = [named_variables[n] for n in names]
        self.shadows = {n: tf.Variable(_value(v), trainable=False, name="ema")
                        for n, v in zip(names, self._sources)}
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")

    def update(self):
        decay = tf.constant(self.decay, tf.float32)
        if self.warmup:
            k = tf.cast(self.updates, tf.float32)
            decay = tf.minimum(decay, (1.0 + k) / (10.0 + k))
        for shadow, source in zip(self.shadows.values(), self._sources):
            shadow.assign(shadow * tf.cast(decay, shadow.dtype)
                          + _value(source) * tf.cast(1.0 - decay, shadow.dtype))
        self.updates.assign_add(1)

    def swap(self):
        """Exchanges model weights and shadows; calling it twice restores both."""
        for shadow, source in zip(self.shadows.values(), self._sources):
            raw = tf.identity(_value(source))
            source.assign(shadow)
            shadow.assign(raw)


def _value(variable):
    return variable.value if hasattr(variable, "value") and not callable(variable.value) else variable
