"""The training loop: traced inner loops, hand-written accumulation, EMA, evaluation,
early stopping, keep-best and checkpoints that resume exactly.

Orbit-style: Python drives an inner `tf.function` that runs `steps_per_loop`
steps with one host sync per loop. Each step reads one per-replica batch of
batch_size x accumulate_n x batch_multiplier examples, splits it into micro-batches,
sums their gradients (so no partial accumulation state ever exists between steps),
reduces across replicas, clips by the global norm of the aggregated gradient, skips
the update when it is not finite, and applies it once.
"""

from __future__ import annotations

import math
import os
import signal
import time

import gin
import keras
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from tfaudio import config
from tfaudio.errors import ConfigError, DivergenceError
from tfaudio.experiment import build
from tfaudio.models.weights import indexed_variables, named_variables
from tfaudio.training.checkpoints import RunCheckpoints, latest_checkpoint, warm_start
from tfaudio.training.ema import WeightEMA
from tfaudio.training.guard import DivergenceGuard
from tfaudio.training.monitor import EarlyStopping, MetricMonitor, ReduceOnPlateau
from tfaudio.training.optimizers import make_optimizer
from tfaudio.training.schedules import LearningRate


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LOSS_SCALE_PERIOD = 2000


@gin.configurable(denylist=["model_dir", "strategy", "trackers", "seed"])
class Trainer:
    """Trains `build()`'s model on `data` and writes checkpoints and metrics to model_dir.

    Args:
      data: a data source with `train(batch_size, seed, start, input_context)` (an
        infinite stream beginning at global example `start`, see tfaudio.data.order)
        and `validation(batch_size)` (finite, or None).
      batch_size: examples per replica per micro-step (the `batch_size` macro).
      train_steps: optimizer updates (the `train_steps` macro), before batch_multiplier.
      accumulate_n: micro-batches whose gradients are summed per update.
      batch_multiplier: k multiplies the effective batch (through accumulation); with
        match_examples the number of updates is divided by k, so runs see the same
        number of examples (the seed's `--accumulate_n 4 --step 4`).
      match_examples: divide train_steps by batch_multiplier.
      steps_per_loop: steps per traced inner loop (one host sync each).
      eval_every: steps between evaluations on the validation split.
      eval_batches: cap on validation batches per evaluation (None: all).
      checkpoint_every: steps between checkpoints; keep_checkpoints: how many to keep.
      best_metric, best_mode: keep the best checkpoint by this metric ("val/loss").
      clip_norm: clip the aggregated gradient to this global norm.
      ema_decay: keep an EMA of all float weights and evaluate it as split "val_ema".
      jit_compile: XLA-compile the gradient computation (slow for convolutions on CPU).
      early_stopping: an EarlyStopping, or None.
      plateau: a ReduceOnPlateau, or None.
      init_from: a run directory to warm-start from when model_dir has no checkpoint.
      init_modules: attribute names of sub-modules to take from init_from (all if empty).
      guard: roll back to the last good checkpoint on divergence (DivergenceGuard.*).
      precision: "float32", "mixed_bfloat16" or "mixed_float16" (with dynamic loss
        scaling); losses, log compression and the optimizer state stay float32.
    """

    def __init__(self, model_dir: str, strategy, trackers, seed: int = 0, data=gin.REQUIRED,
                 batch_size: int = gin.REQUIRED, train_steps: int = gin.REQUIRED,
                 accumulate_n: int = 1, batch_multiplier: int = 1,
                 match_examples: bool = True, steps_per_loop: int = 10, eval_every: int = 500,
                 eval_batches: int | None = None, checkpoint_every: int = 1000,
                 keep_checkpoints: int = 3, best_metric: str | None = None, best_mode: str = "min",
                 clip_norm: float | None = None, ema_decay: float | None = None,
                 jit_compile: bool = False, early_stopping: EarlyStopping | None = None,
                 plateau: ReduceOnPlateau | None = None, init_from: str | None = None,
                 init_modules: tuple = (), guard: bool = True, precision: str = "float32"):
        for name, value in (("batch_size", batch_size), ("train_steps", train_steps),
                            ("accumulate_n", accumulate_n), ("batch_multiplier", batch_multiplier),
                            ("steps_per_loop", steps_per_loop), ("eval_every", eval_every),
                            ("checkpoint_every", checkpoint_every)):
            if int(value) < 1:
                raise ConfigError(f"Trainer.{name}={value} must be a positive integer")
        self.model_dir, self.strategy, self.trackers, self.seed = model_dir, strategy, trackers, seed
        keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow: identical initial weights
        self.data = data
        self.replicas = strategy.num_replicas_in_sync
        self.batch_size = batch_size
        self.micro_steps = accumulate_n * batch_multiplier
        self.global_micro_batch = batch_size * self.replicas
        self.effective_batch = self.global_micro_batch * self.micro_steps
        self.total_steps = max(1, train_steps // batch_multiplier) if match_examples else train_steps
        self.steps_per_loop, self.eval_every, self.eval_batches = steps_per_loop, eval_every, eval_batches
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.clip_norm, self.jit_compile = clip_norm, jit_compile
        self.early_stopping, self.plateau = early_stopping, plateau
        self.init_from, self.init_modules = init_from, tuple(init_modules)
        if precision not in PRECISIONS:
            raise ConfigError(f"Trainer.precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        keras.mixed_precision.set_global_policy(precision)
        self.precision = precision

        with strategy.scope():
            self.model, self.task = build()
            # A task may carry state (feature statistics) computed once from the training data;
            # a resumed run restores it from the checkpoint instead.
            if not latest_checkpoint(model_dir):
                self.task.initialize(data, model_dir)
            # Learning rate (LearningRate.*) and optimizer (make_optimizer.*) come from their own
            # gin bindings; both are built here, inside the strategy scope.
            self.schedule = LearningRate()
            self.peak_lr = self.schedule.set_effective_batch(self.effective_batch)
            self.optimizer = make_optimizer()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples_seen")
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_updates")
            self.data_seed = tf.Variable(seed, dtype=tf.int64, trainable=False, name="data_seed")
            self.best = MetricMonitor(best_metric, best_mode) if best_metric else None
            self.guard = DivergenceGuard() if guard else None
            # Dynamic loss scaling for float16: halved on a non-finite step, doubled after
            # LOSS_SCALE_PERIOD finite ones.
            self.loss_scale = tf.Variable(2.0 ** 15 if precision == "mixed_float16" else 1.0,
                                          trainable=False, name="loss_scale")
            self.finite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="finite_steps")
            self._build_model()
            self.model_vars = named_variables(self.model)
            self.ema = WeightEMA(self.model_vars, ema_decay) if ema_decay else None
        self._make_checkpoints()
        self._train_loop = tf.function(self._loop)
        grads_fn = self._replica_grads
        self._replica_grads_fn = tf.function(grads_fn, jit_compile=True) if jit_compile else grads_fn
        # Validation batches vary in padded length: trace once with relaxed shapes.
        self._eval_step = tf.function(self._eval_replica_step, reduce_retracing=True)

    # ---------------------------------------------------------------- set-up

    def _build_model(self):
        sample = self.data.validation(self.batch_size) or self.data.train(self.batch_size, 0, 0, None)
        batch = next(iter(sample))
        per_example, terms = self.task.loss(self.model, batch, training=False)
        self.term_names = sorted(terms)
        self.optimizer.build(self.model.trainable_variables)
        self.sample_batch = batch
        with self.strategy.scope():
            self._stats = {name: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=name)
                           for name in ["loss", "count", "grad_norm", "input_wait", "skipped", "lr"]
                           + [f"term_{t}" for t in self.term_names]}

    def _make_datasets(self):
        """Training stream from the restored position; the validation split."""
        per_replica = self.batch_size * self.micro_steps
        seed = int(self.data_seed.numpy())
        start = int(self.step.numpy()) * self.effective_batch

        def train_fn(input_context):
            return self.data.train(per_replica, seed, start, input_context)

        self.train_dataset = self.strategy.distribute_datasets_from_function(train_fn)
        self.train_iterator = iter(self.train_dataset)
        val = self.data.validation(self.global_micro_batch)
        self.val_dataset = self.strategy.experimental_distribute_dataset(val) if val is not None else None

    def _make_checkpoints(self):
        trees = {"model": self.model_vars, "optimizer": indexed_variables(self.optimizer.variables),
                 "ema": self.ema.shadows if self.ema else None,
                 "task": named_variables(self.task.state) if self.task.state is not None else None}
        objects = dict(step=self.step, examples_seen=self.examples_seen, skipped=self.skipped,
                       data_seed=self.data_seed)
        if self.ema is not None:
            objects["ema_updates"] = self.ema.updates
        if self.precision == "mixed_float16":
            objects.update(loss_scale=self.loss_scale, finite_steps=self.finite_steps)
        for name in ("best", "early_stopping", "plateau", "guard"):
            if getattr(self, name) is not None:
                objects[name] = getattr(self, name)
        self.checkpoints = RunCheckpoints(self.model_dir, trees, objects, self.step, self.keep_checkpoints,
                                          keep_best=self.best is not None)

    def restore(self) -> bool:
        """Resumes from model_dir's latest checkpoint, or warm-starts from init_from."""
        latest = self.checkpoints.latest
        if latest:
            self.checkpoints.restore(latest)
            logging.info("resumed from %s at step %d", latest, int(self.step.numpy()))
            return True
        if self.init_from:
            taken, left = warm_start(self.model_vars, self.init_from, self.init_modules)
            self.trackers.log({"step": 0, "event": "warm_start", "from": self.init_from,
                               "took": len(taken), "left": left})
        return False

    # ---------------------------------------------------------------- traced steps

    def _replica_grads(self, batch):
        """Summed gradients and loss sums over this replica's micro-batches."""
        n = self.micro_steps
        tvars = self.model.trainable_variables

        def micro(i):
            return tf.nest.map_structure(
                lambda x: tf.reshape(x, tf.concat([[n, -1], tf.shape(x)[1:]], 0))[i], batch)

        def one(mb):
            with tf.GradientTape() as tape:
                per_example, terms = self.task.loss(self.model, mb, training=True)
                loss = tf.reduce_sum(tf.cast(per_example, tf.float32)) / self.global_micro_batch
                scaled = loss * self.loss_scale
            grads = tape.gradient(scaled, tvars)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) / tf.cast(self.loss_scale, v.dtype)
                     for g, v in zip(grads, tvars)]
            sums = {"loss": tf.reduce_sum(tf.cast(per_example, tf.float32)),
                    "count": tf.cast(tf.shape(per_example)[0], tf.float32)}
            sums.update({f"term_{k}": tf.reduce_sum(tf.cast(v, tf.float32)) for k, v in terms.items()})
            return grads, sums

        if n == 1:
            return one(batch)
        grads, sums = one(micro(0))
        for i in tf.range(1, n):
            g_i, s_i = one(micro(i))
            grads = [a + b for a, b in zip(grads, g_i)]
            sums = {k: sums[k] + s_i[k] for k in sums}
        return [g / n for g in grads], sums

    def _summed_grads(self, batch):
        """Gradients and loss sums of this replica's batch, all-reduced (summed) over replicas
        in one batched collective."""
        grads, sums = self._replica_grads_fn(batch)
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (grads, sums))

    def _first_replica(self, values):
        """Replica 0's copy of values that an all-reduce made identical on every replica."""
        return tf.nest.map_structure(lambda x: self.strategy.experimental_local_results(x)[0], values)

    def _loop(self, iterator, num_steps):
        for var in self._stats.values():
            var.assign(tf.zeros_like(var))
        for _ in tf.range(num_steps):
            lr = (self.schedule(self.step) * (self.plateau.scale if self.plateau else 1.0)
                  * (self.guard.lr_scale if self.guard else 1.0))
            self.optimizer.learning_rate.assign(lr)
            t0 = tf.timestamp()
            batch = next(iterator)
            self._stats["input_wait"].assign_add(tf.timestamp() - t0)
            grads, sums = self.strategy.run(self._summed_grads, args=(batch,))
            grads, sums = self._first_replica((grads, sums))
            norm = tf.linalg.global_norm(grads)
            finite = tf.math.is_finite(norm) & tf.math.is_finite(sums["loss"])
            if self.clip_norm:
                grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=norm)
            tf.cond(finite, lambda: self._apply(grads), lambda: self._skip())
            if self.precision == "mixed_float16":
                self._update_loss_scale(finite)
            for key, value in sums.items():
                self._stats[key].assign_add(tf.cast(value, tf.float64))
            self._stats["grad_norm"].assign(tf.cast(norm, tf.float64))
            self._stats["lr"].assign(tf.cast(lr, tf.float64))
            self.step.assign_add(1)
            self.examples_seen.assign_add(self.effective_batch)
        return {k: v.read_value() for k, v in self._stats.items()}

    def _apply(self, grads):
        self.optimizer.apply(grads, self.model.trainable_variables)
        if self.ema is not None:
            self.ema.update()
        return tf.constant(True)

    def _update_loss_scale(self, finite):
        self.finite_steps.assign(tf.where(finite, self.finite_steps + 1, 0))
        grow = self.finite_steps >= LOSS_SCALE_PERIOD
        self.loss_scale.assign(tf.where(finite, tf.where(grow, self.loss_scale * 2.0, self.loss_scale),
                                        tf.maximum(self.loss_scale / 2.0, 1.0)))
        self.finite_steps.assign(tf.where(grow, tf.zeros_like(self.finite_steps), self.finite_steps))

    def _skip(self):
        self.skipped.assign_add(1)
        self._stats["skipped"].assign_add(1.0)
        return tf.constant(False)

    def _eval_replica_step(self, batch):
        def fn(b):
            values = self.task.metrics(self.model, b)
            out = {k: tf.reduce_sum(tf.cast(v, tf.float32)) for k, v in values.items()}
            out["count"] = tf.cast(tf.shape(next(iter(values.values())))[0], tf.float32)
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, out)
        sums = self.strategy.run(fn, args=(batch,))
        return self._first_replica(sums)

    # ---------------------------------------------------------------- evaluation

    def evaluate(self) -> dict:
        """{split: {metric: mean}} for the raw weights ("val") and the EMA ("val_ema")."""
        if self.val_dataset is None:
            return {}
        results = {"val": self._evaluate_once()}
        if self.ema is not None:
            self.ema.swap()
            try:
                results["val_ema"] = self._evaluate_once()
            finally:
                self.ema.swap()
        return results

    def _evaluate_once(self) -> dict:
        totals: dict[str, float] = {}
        for i, batch in enumerate(self.val_dataset):
            if self.eval_batches is not None and i >= self.eval_batches:
                break
            for k, v in self._eval_step(batch).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        count = max(totals.pop("count", 0.0), 1.0)
        return {k: v / count for k, v in totals.items()}

    # ---------------------------------------------------------------- the run

    def save(self, results: dict | None = None) -> str | None:
        """Writes a checkpoint unless the weights hold a non-finite value."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model_vars.values()
                   if tf.as_dtype(v.dtype).is_floating):
            self.trackers.log({"step": int(self.step.numpy()), "event": "non_finite_weights_not_saved"})
            return None
        return self.checkpoints.save()

    def train(self) -> dict:
        """Runs until train_steps, early stopping or SIGTERM/SIGINT (which save a checkpoint
        at the current step and return); returns the last evaluation. Raises
        DivergenceError when the guard runs out of rollbacks."""
        self.restore()
        self._make_datasets()
        step = int(self.step.numpy())
        if self.guard is not None and self.checkpoints.latest is None:
            self.save()  # a rollback target before the first update
        results: dict = {}
        wrote_operative = False
        bar = tqdm(total=self.total_steps, initial=step, unit="step", dynamic_ncols=True, disable=None)
        start = time.time()
        last_saved = step
        with _StopSignals() as signals:
            while step < self.total_steps:
                n = min(self.steps_per_loop, self.total_steps - step,
                        self.eval_every - step % self.eval_every,
                        self.checkpoint_every - step % self.checkpoint_every)
                t0 = time.time()
                stats = {k: float(v) for k, v in self._train_loop(self.train_iterator, tf.constant(n)).items()}
                wall = time.time() - t0
                step = int(self.step.numpy())
                if not wrote_operative:
                    config.write_operative_config(self.model_dir)
                    wrote_operative = True
                row = self._train_row(step, n, wall, stats, time.time() - start)
                self.trackers.log(row)
                bar.update(n)
                bar.set_postfix(loss=f"{row['loss']:.4g}", sps=f"{row['steps_per_sec']:.2f}")
                if self.guard is not None and self._guard(row, n) == "rollback":
                    step = last_saved = self._roll_back(step, bar)
                    continue
                if signals.received:
                    self.save()
                    self.trackers.log({"step": step, "event": "preempted", "signal": signals.received})
                    bar.close()
                    return results
                stop = False
                if step % self.eval_every == 0 or step == self.total_steps:
                    results = self.evaluate()
                    stop = self._after_eval(step, results, row["lr"])
                if (step % self.checkpoint_every == 0 or step == self.total_steps or stop) and self._may_save():
                    self.save()
                    last_saved = step
                if stop:
                    break
        bar.close()
        if last_saved != step and self._may_save():
            self.save()
        return results

    def _may_save(self) -> bool:
        return self.guard is None or not self.guard.suspect

    def _guard(self, row: dict, n: int) -> str | None:
        verdict = self.guard.observe(row["loss"], row["skipped_updates"], n)
        if row["skipped_updates"]:
            self.trackers.log({"step": row["step"], "event": "skipped_non_finite", "count": row["skipped_updates"]})
        if verdict == "spike":
            self.trackers.log({"step": row["step"], "event": "loss_spike", "loss": row["loss"]})
        return verdict

    def _roll_back(self, step: int, bar) -> int:
        """Restores the latest checkpoint with a backed-off learning rate; returns its step."""
        latest = self.checkpoints.latest
        try:
            scale = self.guard.roll_back(lambda: self.checkpoints.restore(latest))
        except DivergenceError as exc:
            self.trackers.log({"step": step, "event": "guard_stop", "message": str(exc)})
            bar.close()
            raise
        restored = int(self.step.numpy())
        self.trackers.log({"step": step, "event": "rollback", "to_step": restored, "lr_scale": scale,
                           "rollbacks": int(self.guard.rollbacks.numpy())})
        logging.warning("divergence at step %d: rolled back to step %d, learning rate x%g", step, restored, scale)
        self._make_datasets()
        bar.reset(total=self.total_steps)
        bar.update(restored)
        return restored

    def _train_row(self, step, n, wall, stats, elapsed) -> dict:
        count = max(stats["count"], 1.0)
        row = {"step": step, "examples_seen": int(self.examples_seen.numpy()), "wall_s": round(elapsed, 3),
               "loss": stats["loss"] / count, "lr": stats["lr"], "grad_norm": stats["grad_norm"],
               "steps_per_sec": n / wall, "examples_per_sec": n * self.effective_batch / wall,
               "input_wait_frac": min(1.0, stats["input_wait"] / wall),
               "effective_batch": self.effective_batch, "skipped_updates": int(stats["skipped"])}
        for t in self.term_names:
            row[f"loss_{t}"] = stats[f"term_{t}"] / count
        return row

    def _after_eval(self, step: int, results: dict, lr: float) -> bool:
        elapsed_examples = int(self.examples_seen.numpy())
        for split, metrics in results.items():
            self.trackers.log({"step": step, "split": split, "examples_seen": elapsed_examples, **metrics})
        if self.val_dataset is not None and self.trackers.wants_media:
            self.task.summaries(self.model, self.sample_batch, self.trackers, step)
        if self.best is not None:
            value = self.best.value_of(results)
            if value is not None and math.isfinite(value) and self.best.update(value):
                self.checkpoints.save_best()
        if self.plateau is not None:
            value = self.plateau.value_of(results)
            if value is not None and self.plateau.step(value, lr):
                self.trackers.log({"step": step, "event": "lr_reduced",
                                   "lr_scale": float(self.plateau.scale.numpy())})
        if self.early_stopping is not None:
            value = self.early_stopping.value_of(results)
            if value is not None and self.early_stopping.should_stop(value):
                self.trackers.log({"step": step, "event": "early_stop",
                                   "metric": self.early_stopping.metric,
                                   "best": float(self.early_stopping.best.numpy())})
                return True
        return False


class _StopSignals:
    """Records SIGTERM/SIGINT so the loop can save and return after the current inner loop;
    a second signal interrupts at once."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        logging.warning("%s: saving a checkpoint after the current loop", self.received)

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
