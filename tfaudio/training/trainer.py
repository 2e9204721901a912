"""The outer training loop: inner loops, evaluations, hooks, checkpoints, preemption.

Python drives `TrainStep.loop` (tfaudio.training.step), `steps_per_loop` updates per
host sync. After each loop the "loop" hooks run (the divergence guard), after each
evaluation the "eval" hooks (keep-best, reduce-on-plateau, early stopping); hooks
return event rows for metrics.jsonl that may ask to save the best checkpoint, to stop
or to roll back. The run's parts (the step with its model, task, optimizer and schedule;
the batches; the hooks) come in from tfaudio.compose; the knobs below are gin
bindings of `Trainer`.
"""

from __future__ import annotations

import os
import time

import gin
import tensorflow as tf
from absl import logging

from tfaudio.errors import ConfigError, DivergenceError
from tfaudio.limits import POSITIVE, POSITIVE_INT, limits
from tfaudio.models.weights import indexed_variables, named_variables
from tfaudio.run_dir import PROGRESS, latest_checkpoint
from tfaudio.training import run_record
from tfaudio.training.batch_plan import Batches
from tfaudio.training.checkpoints import CheckpointConfig, RunCheckpoints, warm_start
from tfaudio.training.guard import DivergenceGuard
from tfaudio.training.monitor import KeepBest, MetricMonitor
from tfaudio.training.preemption import StopSignals
from tfaudio.training.step import TrainStep
from tfaudio.training.trackers import Progress


@gin.configurable(denylist=["model_dir", "strategy", "step", "batches", "hooks", "checkpoint", "seed"])
@limits(steps_per_loop=POSITIVE_INT, eval_every=POSITIVE_INT, eval_batches=POSITIVE_INT.or_none(),
        max_minutes=POSITIVE.or_none())
class Trainer:
    """Trains `step`'s model with its task on `data`; writes checkpoints and metrics.jsonl to
    model_dir. Built from its parts by tfaudio.compose; `prepare()` then reads what
    the run starts from, `train(trackers)` runs it.

    Args:
      model_dir: the run directory (this worker's).
      strategy: the tf.distribute strategy `step` was built in.
      step: the TrainStep (model, task, optimizer, schedule, options).
      batches: the run's Batches (tfaudio.training.batch_plan).
      hooks: the outer loop's hooks (tfaudio.training.monitor.training_hooks).
      checkpoint: a CheckpointConfig (how often, how many, warm start).
      seed: the data order's seed (checkpointed with the run).
      data: a DataSource (tfaudio.data.source).
      steps_per_loop: updates per traced inner loop (one host sync each).
      eval_every, eval_batches: baseline steps between evaluations; cap on validation batches.
      max_minutes: end the run (evaluated and saved) after this many minutes of training,
        or at train_steps, whichever comes first; None: no limit. The minutes count over
        the run's life (the checkpoint keeps them), so a resumed run gets what is left.
    """

    def __init__(self, model_dir: str, strategy, step: TrainStep, batches: Batches, hooks: list,
                 checkpoint: CheckpointConfig, seed: int = 0, data=gin.REQUIRED, steps_per_loop: int = 10,
                 eval_every: int = 500, eval_batches: int | None = None, max_minutes: float | None = None):
        self.model_dir, self.strategy, self.inner, self.batches = model_dir, strategy, step, batches
        self.model, self.task, self.data, self.config = step.model, step.task, data, checkpoint
        self.hooks = list(hooks)
        self.guard = next((h for h in self.hooks if isinstance(h, DivergenceGuard)), None)
        self.steps_per_loop, self.eval_every, self.eval_batches = steps_per_loop, eval_every, eval_batches
        self.max_seconds = None if max_minutes is None else 60.0 * max_minutes
        self.switching = False
        self.trackers = None  # given by train()
        self.sample_batch = self.checkpoints = None  # read by prepare()
        self.term_names: list = []
        with strategy.scope():
            self.data_seed = tf.Variable(seed, dtype=tf.int64, trainable=False, name="data_seed")
            # Examples skipped by rollbacks: the data position is step x effective batch + this.
            self.data_skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_skipped")
            # Seconds of training before the latest save: wall_s and max_minutes go on from it on resume
            # (float32, as everything in the strategy's scope: 1/16 s resolution after 11 days).
            self.train_seconds = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="train_seconds")
        self.clock_start = time.time()

    def prepare(self) -> None:
        """Reads what the run starts from: on a fresh run the task's state from the data
        (feature statistics); one batch, which creates every variable; one validation
        batch, which checks the monitored metrics exist; the run's checkpoints."""
        fresh = not latest_checkpoint(self.model_dir)
        micro_batch = self.batches.micro_batch
        with self.strategy.scope():
            if fresh:
                self.task.initialize(self.data, self.model_dir)
            self.sample_batch = next(iter(self.data.validation(micro_batch)
                                          or self.data.train(micro_batch, 0, 0, None)))
            self.term_names = self.inner.build(self.sample_batch)
            if fresh:
                self.task.initialize_model(self.model)
        self._check_monitored([h for h in self.hooks if isinstance(h, MetricMonitor)])
        trees = {"model": self.inner.model_vars, "optimizer": indexed_variables(self.inner.optimizer.variables),
                 "ema": self.inner.ema.shadows if self.inner.ema else None,
                 "task": named_variables(self.task.state) if self.task.state is not None else None}
        objects = dict(data_seed=self.data_seed, data_skipped=self.data_skipped, train_seconds=self.train_seconds,
                       **self.inner.state(), **{h.checkpoint_key: h for h in self.hooks})
        self.checkpoints = RunCheckpoints(self.model_dir, trees, objects, self.inner.step, self.config.keep,
                                          keep_best=any(isinstance(h, KeepBest) for h in self.hooks))

    def _check_monitored(self, monitors: list):
        """A ConfigError when a monitor names a metric the run will not report."""
        if not monitors:
            return
        # One validation batch evaluated: the names are what evaluation reports, and its trace
        # (and XLA compilation) is the one every later evaluation reuses.
        with self.strategy.scope():
            val = self.data.validation(self.batches.global_micro_batch)
        evaluated = sorted(self.inner.evaluate(self.strategy.experimental_distribute_dataset(val), 1)) \
            if val is not None else []
        splits = {"train": sorted(self._train_row(1.0, {k: 0.0 for k in self.inner.stats_names}, 0.0))}
        if val is not None:
            splits.update(val=evaluated, val_ema=evaluated if self.inner.ema else None,
                          train_subset=evaluated if self.data.train_subset(1) is not None else None)
        splits = {k: v for k, v in splits.items() if v}
        for monitor in monitors:
            binding = monitor.binding
            split, name = monitor.metric.split("/", 1)
            if split not in splits:
                raise ConfigError(f"{binding} = {monitor.metric!r}: this run has no split {split!r}; "
                                  f"it reports {', '.join(splits)}")
            if name not in splits[split]:
                raise ConfigError(f"{binding} = {monitor.metric!r}: the {split} split reports no {name!r}; "
                                  f"choose one of {', '.join(f'{split}/{n}' for n in splits[split])}")

    # ---------------------------------------------------------------- data and state

    def _make_datasets(self):
        """Training stream from the restored position; the validation split; the held
        subset of training files evaluated as its own split, when the data has one."""
        seed, start = int(self.data_seed.numpy()), self.data_position()

        def train_fn(input_context):
            return self.data.train(self.batches.replica_step_batch, seed, start, input_context)

        with self.strategy.scope():  # a pipeline may shape its batches for the strategy (static on TPU)
            self.train_iterator = iter(self.strategy.distribute_datasets_from_function(train_fn))
            val = self.data.validation(self.batches.global_micro_batch)
            subset = self.data.train_subset(self.batches.global_micro_batch)
        self.val_dataset = self.strategy.experimental_distribute_dataset(val) if val is not None else None
        self.subset_dataset = self.strategy.experimental_distribute_dataset(subset) if subset is not None else None

    def data_position(self) -> int:
        """Global examples consumed so far: examples seen plus what rollbacks skipped."""
        return int(self.inner.examples_seen.numpy()) + int(self.data_skipped.numpy())

    @property
    def global_step(self) -> int:
        return int(self.inner.step.numpy())

    def restore(self) -> bool:
        """Resumes from model_dir's latest checkpoint, or warm-starts from checkpoint.init_from."""
        latest = self.checkpoints.latest
        if latest:
            self.checkpoints.restore(latest)
            logging.info("resumed from %s at step %d", latest, self.global_step)
            return True
        if self.config.init_from:
            taken, left = warm_start(self.inner.model_vars, self.config.init_from, self.config.init_modules)
            self.trackers.log({"step": 0, "event": "warm_start", "from": self.config.init_from,
                               "took": len(taken), "left": left})
        return False

    def save(self) -> str | None:
        """Writes a checkpoint unless the weights hold a non-finite value."""
        if not self.inner.weights_finite():
            self.trackers.log({"step": self.global_step, "event": "non_finite_weights_not_saved"})
            return None
        self.train_seconds.assign(self.elapsed())
        return self.checkpoints.save()

    def elapsed(self) -> float:
        """Seconds of training over the run's life, this process's and the resumed ones'."""
        return time.time() - self.clock_start

    def evaluate(self) -> dict:
        """{split: {metric: mean}} for the raw weights ("val"), the EMA ("val_ema") and the
        held training subset ("train_subset", raw weights)."""
        if self.val_dataset is None:
            return {}
        results = {"val": self.inner.evaluate(self.val_dataset, self.eval_batches)}
        if self.inner.ema is not None:
            self.inner.ema.swap()
            try:
                results["val_ema"] = self.inner.evaluate(self.val_dataset, self.eval_batches)
            finally:
                self.inner.ema.swap()
        if self.subset_dataset is not None:
            results["train_subset"] = self.inner.evaluate(self.subset_dataset, self.eval_batches)
        return results

    # ---------------------------------------------------------------- the run

    def train(self, trackers) -> dict:
        """Runs until train_steps, a stopping hook or SIGTERM/SIGINT (which save a checkpoint
        at the current step and return), logging to `trackers` (tfaudio.training.trackers);
        returns the last evaluation. Raises DivergenceError when the guard runs out of
        rollbacks."""
        self.trackers = trackers
        self.restore()
        self.clock_start = time.time() - float(self.train_seconds.numpy())
        self._make_datasets()
        step = last_saved = self.global_step
        if self.guard is not None and self.checkpoints.latest is None:
            self.save()  # a rollback target before the first update
        results: dict = {}
        wrote_operative = False
        bar = Progress(self.batches.updates, step, os.path.join(self.model_dir, PROGRESS))
        stopped = False
        self.inner.stop_request.assign(0)
        with StopSignals(self.inner.stop_request) as signals:
            while step < self.batches.updates:
                if self.batches.switch_step is not None and step >= self.batches.switch_step:
                    self.switching = True
                    break
                n = min(self.steps_per_loop, self.batches.updates - step, self._until(step, self.eval_every),
                        self._until(step, self.config.every), (self.batches.switch_step or self.batches.updates) - step)
                t0 = time.time()
                stats = self.inner.loop(self.train_iterator, n)
                row = self._train_row(time.time() - t0, stats, self.elapsed())
                step = row["step"]
                if not wrote_operative:  # every configurable has been called by now
                    run_record.write_operative_config(self.model_dir)
                    wrote_operative = True
                self.trackers.log(row)
                bar.update(step, row["loss"], row["steps_per_sec"])
                actions = self._run_hooks("loop", step, {"train": row})
                if stats["stopped"]:
                    stopped = True
                    self._preempted(step, signals.received)
                    break
                if "rollback" in actions:
                    step = last_saved = self._roll_back(step, bar)
                    continue
                out_of_time = self.max_seconds is not None and self.elapsed() >= self.max_seconds
                if out_of_time:
                    self.trackers.log({"step": step, "event": "time_budget", "minutes": self.max_seconds / 60})
                if self._reached(step, self.eval_every) or step == self.batches.updates or out_of_time:
                    results = self.evaluate()
                    for split, metrics in results.items():
                        self.trackers.log({"step": step, "split": split, "examples_seen": row["examples_seen"],
                                           **metrics})
                    if self.val_dataset is not None and self.trackers.wants_media:
                        self.task.summaries(self.model, self.sample_batch, self.trackers, step)
                        for split, metrics in results.items():
                            self.task.split_summaries(split, metrics, self.trackers, step)
                    actions = self._run_hooks("eval", step, {"train": row, **results})
                    if "save_best" in actions:
                        self.checkpoints.save_best()
                if (self._reached(step, self.config.every) or step == self.batches.updates or "stop" in actions
                        or out_of_time) and self._may_save():
                    self.save()
                    last_saved = step
                if "stop" in actions or out_of_time:
                    break
        bar.close()
        if last_saved != step and not stopped and self._may_save():
            self.save()
        if self.switching:
            self.trackers.log({"step": step, "event": "phase_switch", "from_batch": self.batches.micro_batch})
        # Freed now, not at interpreter exit: there, a prefetch thread inside a
        # numpy_function (file decoding) is stopped at the GIL and the iterator waits forever.
        self.train_iterator = None
        return results

    def _preempted(self, step: int, signal_name: str | None):
        """Saves at `step` unless a spike is in progress (the last good checkpoint then stays
        the resume point); logs the `preempted` event."""
        saved = self._may_save() and self.save() is not None
        self.trackers.log({"step": step, "event": "preempted", "signal": signal_name or "another worker's",
                           "saved": saved})
        logging.warning("preempted at step %d: %s", step, "checkpoint saved" if saved else
                        "no checkpoint while a loss spike is in progress; the last good one stays")

    def _until(self, step: int, every: int) -> int:
        """Updates from `step` to the first one whose baseline step reaches the next multiple of `every`."""
        target = (step * self.batches.clock // every + 1) * every
        return -(-target // self.batches.clock) - step

    def _reached(self, step: int, every: int) -> bool:
        """True when update `step` is the first to reach a multiple of `every` baseline steps."""
        return step * self.batches.clock // every > (step - 1) * self.batches.clock // every

    def _run_hooks(self, when: str, step: int, results: dict) -> set:
        """Calls the hooks registered for `when`; logs their events; returns their actions."""
        actions = set()
        for hook in self.hooks:
            if hook.when == when:
                for event in hook(step, results):
                    if "event" in event:
                        self.trackers.log({k: v for k, v in event.items() if k != "action"})
                    actions.add(event.get("action"))
        return actions

    def _may_save(self) -> bool:
        return self.guard is None or not self.guard.suspect

    def _roll_back(self, step: int, bar) -> int:
        """Restores the latest checkpoint with a backed-off learning rate and goes on with
        the data after the batches that led to the divergence (they are skipped, not
        replayed, as PaLM's restarts did); returns the restored step."""
        latest = self.checkpoints.latest
        position = self.data_position()
        loss_scale = self.inner.loss_scale.numpy()  # float16 overflows are not divergence: keep the scale
        try:
            scale = self.guard.roll_back(lambda: self.checkpoints.restore(latest))
        except DivergenceError as exc:
            self.trackers.log({"step": step, "event": "guard_stop", "message": str(exc)})
            bar.close()
            raise
        self.inner.loss_scale.assign(loss_scale)
        restored = self.global_step
        skipped = position - self.data_position()
        self.data_skipped.assign_add(skipped)
        self.trackers.log({"step": step, "event": "rollback", "to_step": restored, "lr_scale": scale,
                           "rollbacks": int(self.guard.rollbacks.numpy()), "skipped_examples": skipped})
        logging.warning("divergence at step %d: rolled back to step %d, learning rate x%g", step, restored, scale)
        self._make_datasets()
        bar.restart(restored)
        return restored

    def _train_row(self, wall: float, stats: dict, elapsed: float) -> dict:
        n, count = int(stats["steps"]), max(stats["count"], 1.0)
        batch = self.batches.effective_batch
        row = {"step": self.global_step, "examples_seen": int(self.inner.examples_seen.numpy()),
               "wall_s": round(elapsed, 3), "loss": stats["loss"] / count, "lr": stats["lr"],
               "grad_norm": stats["grad_norm"], "steps_per_sec": n / wall, "examples_per_sec": n * batch / wall,
               "input_wait_frac": min(1.0, stats["input_wait"] / wall), "effective_batch": batch,
               "micro_batch": self.batches.micro_batch, "batch_mode": self.batches.mode,
               "skipped_updates": int(stats["skipped"]), "loop_steps": n}
        if self.inner.options.precision == "mixed_float16":
            row.update(loss_scale=float(self.inner.loss_scale.numpy()), overflows=int(stats["overflows"]))
        for t in self.term_names:
            row[f"loss_{t}"] = stats[f"term_{t}"] / count
        return row
