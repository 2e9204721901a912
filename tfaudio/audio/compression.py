"""`LogCompression`: log/dB compression of spectrogram magnitudes that cannot diverge.

The seed study lost a run at epoch 798 to an unguarded log. Here the floor is
applied before the log, +inf is clamped, everything runs in float32 whatever
the mixed-precision policy, the gradient is bounded by 1/floor, optional
normalisation clips to a symmetric range, and the inverse clips before exp.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE, Choice, limits

_FLOAT32_MAX = 3.4e38


@limits(floor=POSITIVE, scale=Choice("log", "db"), db_multiplier=POSITIVE, max_value=POSITIVE, max_abs=POSITIVE)
class LogCompression(keras.layers.Layer):
    """Maps non-negative magnitudes to a bounded log scale and back.

    Args:
      floor: smallest magnitude represented; smaller values (zeros, denormals)
        map to the floor before the log.
      scale: "log" (natural log) or "db" (`db_multiplier` * log10).
      db_multiplier: 20 for magnitudes, 10 for power spectra.
      normalize: map [log(floor), log(max_value)] linearly onto
        [-max_abs, max_abs] and clip there.
      max_value: magnitude that maps to +max_abs when normalising.
      max_abs: half-width of the normalised range.
      check_nan: fail with a clear message when the input holds NaN.
      guarded: False takes the plain log of the magnitudes (no floor, no clamp, a
        zero gives -inf): the log that made the seed study's batch-256 LAMB run diverge,
        for launch/specs/tacotron_large_batch.py to compare with; never for training.
    """

    def __init__(self, floor: float = 1e-5, scale: str = "log", db_multiplier: float = 20.0,
                 normalize: bool = False, max_value: float = 100.0, max_abs: float = 4.0,
                 check_nan: bool = True, guarded: bool = True, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if max_value <= floor:
            raise ConfigError(f"LogCompression.max_value={max_value} must exceed floor={floor}")
        self.floor, self.scale, self.db_multiplier = floor, scale, db_multiplier
        self.normalize, self.max_value, self.max_abs = normalize, max_value, max_abs
        self.check_nan, self.guarded = check_nan, guarded

    def _log(self, x):
        if self.scale == "db":
            return self.db_multiplier * tf.math.log(x) / math.log(10.0)
        return tf.math.log(x)

    def _exp(self, y):
        if self.scale == "db":
            return tf.exp(y * math.log(10.0) / self.db_multiplier)
        return tf.exp(y)

    def _log_scalar(self, x: float) -> float:
        """`_log` of a Python number, usable while tracing."""
        return self.db_multiplier * math.log10(x) if self.scale == "db" else math.log(x)

    @property
    def log_floor(self) -> float:
        return self._log_scalar(self.floor)

    @property
    def log_max(self) -> float:
        return self._log_scalar(self.max_value)

    @property
    def floor_value(self) -> float:
        """The output for silence: the padding value for targets and the go frame."""
        return -self.max_abs if self.normalize else self.log_floor

    def call(self, x):
        x = tf.cast(x, tf.float32)
        if self.check_nan:
            tf.debugging.assert_equal(tf.reduce_any(tf.math.is_nan(x)), False,
                                      message="LogCompression: input contains NaN "
                                              "(check the audio file or the layer feeding it)")
        if not self.guarded:
            return self._log(x)
        x = tf.clip_by_value(x, self.floor, _FLOAT32_MAX)
        y = self._log(x)
        if self.normalize:
            span = self.log_max - self.log_floor
            y = (2.0 * (y - self.log_floor) / span - 1.0) * self.max_abs
            y = tf.clip_by_value(y, -self.max_abs, self.max_abs)
        return y

    def inverse(self, y):
        """Magnitudes from compressed values; clips before exp so it never overflows."""
        y = tf.cast(y, tf.float32)
        if self.normalize:
            y = tf.clip_by_value(y, -self.max_abs, self.max_abs)
            y = (y / self.max_abs + 1.0) / 2.0 * (self.log_max - self.log_floor) + self.log_floor
        else:
            y = tf.clip_by_value(y, self.log_floor, self._log(tf.constant(_FLOAT32_MAX)) - 1.0)
        return self._exp(y)

    def get_config(self):
        config = super().get_config()
        config.update(floor=self.floor, scale=self.scale, db_multiplier=self.db_multiplier,
                      normalize=self.normalize, max_value=self.max_value, max_abs=self.max_abs,
                      check_nan=self.check_nan, guarded=self.guarded)
        return config
