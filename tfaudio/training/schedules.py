"""Learning-rate schedules: batch scaling rules, linear warmup and decays.

lr(step) = learning_rate * scale(effective_batch / reference_batch_size)
           * warmup(step) * decay(step - warmup_steps) * plateau_factor

Every decay is a multiplier of the peak rate, a pure TensorFlow function of the
step, so it runs inside the traced training loop and is easy to test.
"""

from __future__ import annotations

import math

import gin
import tensorflow as tf

from tfaudio.errors import ConfigError
from tfaudio.limits import COUNT, POSITIVE, POSITIVE_INT, PROPORTION, UNIT, Choice, Each, Rule, limits

SCALING_RULES = ("none", "linear", "sqrt")


@gin.configurable
class ConstantDecay:
    """No decay."""

    def __call__(self, t):
        return tf.ones_like(tf.cast(t, tf.float32))


@gin.configurable
@limits(decay_steps=POSITIVE_INT.or_none(), decay_rate=PROPORTION)
class ExponentialDecay:
    """multiplier = decay_rate ** (t / decay_steps), or of floor(t / decay_steps) when staircase;
    decay_steps None: the run's train_steps."""

    def __init__(self, decay_steps: int | None = None, decay_rate: float = 0.5, staircase: bool = False):
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, decay_rate, staircase

    def __call__(self, t):
        p = tf.cast(t, tf.float32) / self.decay_steps
        if self.staircase:
            p = tf.floor(p)
        return tf.pow(tf.constant(self.decay_rate, tf.float32), p)


@gin.configurable
@limits(decay_steps=POSITIVE_INT.or_none(), floor=UNIT)
class CosineDecay:
    """Half a cosine from 1 down to `floor` over `decay_steps` (None: the run's train_steps),
    then flat at `floor`.

    Unlike PyTorch's CosineAnnealingLR it never rises again after `decay_steps`.
    """

    def __init__(self, decay_steps: int | None = None, floor: float = 0.0):
        self.decay_steps, self.floor = decay_steps, floor

    def __call__(self, t):
        frac = tf.clip_by_value(tf.cast(t, tf.float32) / self.decay_steps, 0.0, 1.0)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + tf.cos(math.pi * frac))


def _increasing_steps(values) -> bool:
    return all(isinstance(v, int) and v > 0 for v in values) and list(values) == sorted(set(values))


@gin.configurable
@limits(boundaries=Rule(_increasing_steps, "increasing positive steps", [(200, 100), (0,)]),
        multipliers=Each(POSITIVE))
class PiecewiseConstant:
    """multipliers[i] applies from boundaries[i-1] (inclusive) to boundaries[i] (exclusive)."""

    def __init__(self, boundaries=(10000,), multipliers=(1.0, 0.1)):
        if len(multipliers) != len(boundaries) + 1:
            raise ConfigError(f"PiecewiseConstant needs one more multiplier than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(multipliers)} multipliers")
        self.boundaries, self.multipliers = list(boundaries), list(multipliers)

    def __call__(self, t):
        t = tf.cast(t, tf.int64)
        index = tf.reduce_sum(tf.cast(t >= tf.constant(self.boundaries, tf.int64), tf.int32))
        return tf.gather(tf.constant(self.multipliers, tf.float32), index)


def batch_scale(effective_batch: int, reference_batch_size: int | None, rule: str) -> float:
    """Learning-rate multiplier for running at `effective_batch` instead of the reference."""
    if rule not in SCALING_RULES:
        raise ConfigError(f"LearningRate.scaling_rule={rule!r}: choose one of {SCALING_RULES}")
    if rule == "none":
        return 1.0
    if not reference_batch_size:
        raise ConfigError(f"LearningRate.scaling_rule={rule!r} needs LearningRate.reference_batch_size")
    ratio = effective_batch / reference_batch_size
    return ratio if rule == "linear" else math.sqrt(ratio)


@gin.configurable
@limits(learning_rate=POSITIVE, warmup_steps=COUNT, scaling_rule=Choice(*SCALING_RULES),
        reference_batch_size=POSITIVE_INT.or_none())
class LearningRate:
    """The learning rate at each step.

    Args:
      learning_rate: peak rate at `reference_batch_size` (the `learning_rate` macro).
      decay: ConstantDecay, ExponentialDecay, CosineDecay or PiecewiseConstant;
        its clock starts when warmup ends.
      warmup_steps: linear ramp from learning_rate / warmup_steps to the peak.
      scaling_rule: "none", "linear" or "sqrt" scaling from reference_batch_size
        to the effective batch (BatchPlan: batch_size x accumulate_n x multiplier x replicas).
      reference_batch_size: the batch at which `learning_rate` was tuned.
    """

    def __init__(self, learning_rate: float = 1e-3, decay=None, warmup_steps: int = 0,
                 scaling_rule: str = "none", reference_batch_size: int | None = None):
        self.base = learning_rate
        self.decay = decay or ConstantDecay()
        self.warmup_steps = int(warmup_steps)
        self.scaling_rule, self.reference_batch_size = scaling_rule, reference_batch_size
        self.peak = learning_rate
        batch_scale(1, reference_batch_size or 1, scaling_rule)  # validate early

    def set_horizon(self, train_steps: int) -> None:
        """Gives a decay without its own decay_steps the rest of the run after warmup."""
        if getattr(self.decay, "decay_steps", 0) is None:
            self.decay.decay_steps = max(1, int(train_steps) - self.warmup_steps)

    def set_effective_batch(self, effective_batch: int) -> float:
        """Fixes the batch-scaled peak rate; returns it."""
        self.peak = self.base * batch_scale(effective_batch, self.reference_batch_size, self.scaling_rule)
        return self.peak

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.warmup_steps > 0:
            warm = tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
            t = tf.maximum(step - self.warmup_steps, 0.0)
        else:
            warm, t = 1.0, step
        return self.peak * warm * self.decay(t)
