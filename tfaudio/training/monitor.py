"""Hooks of the outer training loop: keep-best, early stopping and reduce-on-plateau
here, the divergence guard in tfaudio.training.guard.

Every hook has one signature, `hook(step, results) -> list of event rows`, and a
`when`: "eval" hooks run after each evaluation, "loop" hooks after each inner loop.
`results` is {"train": the last training row, "val": {...}, "val_ema": {...}}; an
event row goes to metrics.jsonl and may carry "action": "save_best", "stop" or
"rollback". The state lives in tf.Variables so it is checkpointed (under the hook's
`checkpoint_key`) and survives a resume. A hook with an `lr_scale` variable scales
the learning rate by it. `training_hooks` builds a run's hooks from its bindings.
Metric names are "<split>/<metric>", e.g. "val/loss", "val_ema/si_sdr" or "train/loss".
"""

from __future__ import annotations

import math

import gin
import tensorflow as tf

from tfaudio.limits import COUNT, METRIC, MODE, NON_NEGATIVE, POSITIVE_INT, Range, limits
from tfaudio.training.guard import DivergenceGuard


class MetricMonitor(tf.Module):
    """Tracks the best value of one metric and how many evaluations passed without improving.
    `binding` names the gin binding that chose the metric (for messages)."""

    when = "eval"
    binding = checkpoint_key = ""

    def __init__(self, metric: str, mode: str = "min", min_delta: float = 0.0, name=None):
        super().__init__(name=name)
        self.metric, self.mode, self.min_delta = metric, mode, min_delta
        self.best = tf.Variable(float("inf") if mode == "min" else float("-inf"), trainable=False)
        self.wait = tf.Variable(0, trainable=False)

    def value_of(self, results: dict) -> float | None:
        """Picks this monitor's metric out of {split: {metric: value}}."""
        split, name = self.metric.split("/", 1)
        return results.get(split, {}).get(name)

    def update(self, value: float) -> bool:
        """Records `value`; True when it beats the best by more than min_delta."""
        best = float(self.best.numpy())
        better = value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        if better:
            self.best.assign(value)
            self.wait.assign(0)
        else:
            self.wait.assign_add(1)
        return better


@gin.configurable
@limits(metric=METRIC, mode=MODE, patience=POSITIVE_INT, min_delta=NON_NEGATIVE)
class EarlyStopping(MetricMonitor):
    """Stops training after `patience` evaluations without an improvement of `min_delta`."""

    binding, checkpoint_key = "EarlyStopping.metric", "early_stopping"

    def __init__(self, metric: str = "val/loss", mode: str = "min", patience: int = 5,
                 min_delta: float = 0.0):
        super().__init__(metric, mode, min_delta)
        self.patience = patience

    def __call__(self, step: int, results: dict) -> list:
        value = self.value_of(results)
        if value is None:
            return []
        self.update(value)
        if int(self.wait.numpy()) < self.patience:
            return []
        return [{"step": step, "event": "early_stop", "metric": self.metric, "best": float(self.best.numpy()),
                 "action": "stop"}]


@gin.configurable
@limits(metric=METRIC, mode=MODE, patience=POSITIVE_INT, factor=Range(0, 1, low_open=True, high_open=True),
        cooldown=COUNT, min_lr=NON_NEGATIVE, min_delta=NON_NEGATIVE)
class ReduceOnPlateau(MetricMonitor):
    """Multiplies the learning rate by `factor` after `patience` evaluations without
    improvement, then waits `cooldown` evaluations; never goes below `min_lr`."""

    binding, checkpoint_key = "ReduceOnPlateau.metric", "plateau"

    def __init__(self, metric: str = "val/loss", mode: str = "min", patience: int = 3,
                 factor: float = 0.5, cooldown: int = 0, min_lr: float = 0.0, min_delta: float = 0.0):
        super().__init__(metric, mode, min_delta)
        self.patience, self.factor, self.cooldown, self.min_lr = patience, factor, cooldown, min_lr
        self.scale = tf.Variable(1.0, trainable=False)  # checkpointed as plateau/scale
        self.cooldown_left = tf.Variable(0, trainable=False)

    @property
    def lr_scale(self) -> tf.Variable:
        """The learning-rate multiplier, as the guard's."""
        return self.scale

    def __call__(self, step: int, results: dict) -> list:
        value = self.value_of(results)
        if value is None or not self.step(value, results["train"]["lr"]):
            return []
        return [{"step": step, "event": "lr_reduced", "lr_scale": float(self.scale.numpy())}]

    def step(self, value: float, current_lr: float) -> bool:
        """Feeds one evaluation; True when the rate was reduced."""
        improved = self.update(value)
        if int(self.cooldown_left.numpy()) > 0:
            self.cooldown_left.assign_sub(1)
            self.wait.assign(0)
            return False
        if improved or int(self.wait.numpy()) < self.patience or current_lr <= self.min_lr:
            return False
        new_scale = float(self.scale.numpy()) * self.factor
        if current_lr * self.factor < self.min_lr:
            new_scale = float(self.scale.numpy()) * self.min_lr / current_lr
        self.scale.assign(new_scale)
        self.wait.assign(0)
        self.cooldown_left.assign(self.cooldown)
        return True


class KeepBest(MetricMonitor):
    """Asks for a checkpoint in checkpoints/best/ whenever `metric` improves."""

    binding, checkpoint_key = "CheckpointConfig.best_metric", "best"

    def __call__(self, step: int, results: dict) -> list:
        value = self.value_of(results)
        if value is not None and math.isfinite(value) and self.update(value):
            return [{"action": "save_best"}]
        return []


@gin.configurable(denylist=["best_metric", "best_mode"])
def training_hooks(best_metric: str | None, best_mode: str, early_stopping: EarlyStopping | None = None,
                   plateau: ReduceOnPlateau | None = None, guard: bool = True) -> list:
    """The outer loop's hooks in the order they run: the divergence guard (unless
    `guard` is False), keep-best (when CheckpointConfig.best_metric names a metric),
    reduce-on-plateau and early stopping (when bound, e.g.
    `training_hooks.plateau = @ReduceOnPlateau()`)."""
    best = KeepBest(best_metric, best_mode) if best_metric else None
    return [h for h in (DivergenceGuard() if guard else None, best, plateau, early_stopping) if h is not None]
