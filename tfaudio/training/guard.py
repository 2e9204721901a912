"""Divergence guard: roll back to the last good checkpoint with a smaller learning rate.

Non-finite updates are already skipped inside the traced step. The guard watches
the loss of each loop of `steps_per_loop` steps: a loss above `spike_factor` x the
running median (and more than 3 x spike_factor robust standard deviations above
it, so noise never counts) for `spike_patience` loops in a row, or `nonfinite_patience` loops
in a row where every update was skipped, asks for a rollback. Each rollback
multiplies the learning rate by `backoff`; after `max_rollbacks` the run stops.
Its whole state (scale, count, loss window, spike and non-finite runs) lives in
tf.Variables, so a resumed run watches with the history it had.
"""

from __future__ import annotations

import math

import gin
import numpy as np
import tensorflow as tf

from tfaudio.errors import DivergenceError
from tfaudio.limits import COUNT, POSITIVE_INT, Range, limits


@gin.configurable
@limits(spike_factor=Range(1, low_open=True), spike_patience=POSITIVE_INT, window=POSITIVE_INT, min_history=COUNT,
        nonfinite_patience=POSITIVE_INT, backoff=Range(0, 1, low_open=True, high_open=True), max_rollbacks=COUNT)
class DivergenceGuard(tf.Module):
    """Args:
      spike_factor: a loop loss above this many times the running median is a spike.
      spike_patience: spikes in a row that trigger a rollback.
      window: loops in the running median; min_history: loops needed before spikes count.
      nonfinite_patience: loops in a row with every update skipped that trigger a rollback.
      backoff: learning-rate multiplier per rollback.
      max_rollbacks: rollbacks allowed before the run stops.
    """

    def __init__(self, spike_factor: float = 3.0, spike_patience: int = 2, window: int = 20,
                 min_history: int = 5, nonfinite_patience: int = 2, backoff: float = 0.5,
                 max_rollbacks: int = 3):
        super().__init__(name="guard")
        self.spike_factor, self.spike_patience = spike_factor, spike_patience
        self.min_history, self.nonfinite_patience = min_history, nonfinite_patience
        self.backoff, self.max_rollbacks = backoff, max_rollbacks
        self.lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        self.rollbacks = tf.Variable(0, trainable=False, name="rollbacks")
        self.window_losses = tf.Variable(tf.zeros([window], tf.float32), trainable=False, name="window_losses")
        self.losses_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="losses_seen")
        self.runs = tf.Variable([0, 0], dtype=tf.int64, trainable=False, name="spike_and_nonfinite_runs")

    @property
    def history(self) -> np.ndarray:
        """The losses of the last `window` healthy loops (oldest first)."""
        seen, values = int(self.losses_seen.numpy()), self.window_losses.numpy()
        window = len(values)
        return values[:seen] if seen < window else np.roll(values, -(seen % window))

    @property
    def spikes(self) -> int:
        return int(self.runs[0].numpy())

    @property
    def nonfinite(self) -> int:
        return int(self.runs[1].numpy())

    def _set_runs(self, spikes: int, nonfinite: int):
        self.runs.assign([spikes, nonfinite])

    def _remember(self, loss: float):
        seen = int(self.losses_seen.numpy())
        self.window_losses[seen % self.window_losses.shape[0]].assign(loss)
        self.losses_seen.assign(seen + 1)

    when, checkpoint_key = "loop", "guard"

    def __call__(self, step: int, results: dict) -> list:
        """The hook: feeds the last loop's training row; events for skipped updates, spikes
        and, when one is due, a rollback."""
        row = results["train"]
        verdict = self.observe(row["loss"], row["skipped_updates"], row["loop_steps"])
        events = []
        if row["skipped_updates"]:
            events.append({"step": step, "event": "skipped_non_finite", "count": row["skipped_updates"]})
        if verdict == "spike":
            events.append({"step": step, "event": "loss_spike", "loss": row["loss"]})
        if verdict == "rollback":
            events.append({"action": "rollback"})
        return events

    @property
    def suspect(self) -> bool:
        """True while a spike or a run of skipped updates is in progress (do not save)."""
        return bool(self.spikes or self.nonfinite)

    def observe(self, loss: float, skipped: int, steps: int) -> str | None:
        """Feeds one loop; returns None, "spike", "non_finite" or "rollback"."""
        if not math.isfinite(loss) or skipped >= steps:
            self._set_runs(self.spikes, self.nonfinite + 1)
            return "rollback" if self.nonfinite >= self.nonfinite_patience else "non_finite"
        if len(self.history) >= self.min_history and self.spike_factor and self._is_spike(loss):
            self._set_runs(self.spikes + 1, 0)
            return "rollback" if self.spikes >= self.spike_patience else "spike"
        self._set_runs(0, 0)
        self._remember(loss)
        return None

    def _is_spike(self, loss: float) -> bool:
        """loss - median > max((spike_factor - 1) x |median|, 3 x spike_factor x noise), where
        noise is the robust standard deviation (1.4826 x MAD) of the window. For a steady
        positive loss this is loss > spike_factor x median; the noise term keeps noisy or
        near-zero losses (one-step loops, negative SI-SDR) from counting as spikes."""
        history = self.history
        median = float(np.median(history))
        noise = 1.4826 * float(np.median(np.abs(history - median)))
        return loss - median > max((self.spike_factor - 1.0) * abs(median), 3.0 * self.spike_factor * noise, 1e-8)

    def roll_back(self, restore) -> float:
        """Calls `restore()` (which reloads a checkpoint, this module included), then applies
        one more backoff; returns the new learning-rate scale. Raises DivergenceError
        once max_rollbacks is used up."""
        done = int(self.rollbacks.numpy())
        if done >= self.max_rollbacks:
            raise DivergenceError(f"training diverged after {done} rollbacks (DivergenceGuard.max_rollbacks="
                                  f"{self.max_rollbacks}); lower the learning rate or raise clip_norm; the last "
                                  "good checkpoint is kept")
        scale = float(self.lr_scale.numpy()) * self.backoff
        restore()
        self.lr_scale.assign(scale)
        self.rollbacks.assign(done + 1)
        self._set_runs(0, 0)
        return scale
