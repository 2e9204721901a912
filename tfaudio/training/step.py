"""The traced inner loop: per-replica gradients with accumulation, one all-reduce,
clipping, skipping of non-finite updates, loss scaling, the update and the EMA.

It knows nothing of checkpoints, evaluation schedules or hooks (Orbit's split): the
outer loop (tfaudio.training.trainer) calls `loop(iterator, n)` and gets the summed
statistics of those n steps back with one host sync. Its batches are a
tfaudio.training.batch_plan.Batches (which names each batch).
"""

from __future__ import annotations

import gin
import numpy as np
import tensorflow as tf

from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE, Choice, Range, limits
from tfaudio.models.weights import float_names, named_variables
from tfaudio.training.batch_plan import Batches
from tfaudio.training.ema import WeightEMA

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LOSS_SCALE_PERIOD = 2000


@gin.configurable
@limits(clip_norm=POSITIVE.or_none(), ema_decay=Range(0, 1, low_open=True, high_open=True, none=True),
        precision=Choice(*PRECISIONS), initial_loss_scale=Range(1))
class StepOptions:
    """How each update is computed.

    Args:
      clip_norm: clip the aggregated gradient to this global norm (None: no clipping).
      ema_decay: keep an EMA of all float weights, evaluated as split "val_ema" (None: off).
      jit_compile: XLA-compile the gradient computation (slow for convolutions on CPU).
      precision: "float32", "mixed_bfloat16" or "mixed_float16" (with dynamic loss
        scaling); losses, log compression and the optimizer state stay float32.
      initial_loss_scale: the float16 loss scale at step 0 (halved at each overflow).
      traced: False runs the training and evaluation steps eagerly, op by op: the untraced
        baseline of a tracing study (seed 001 measured 1.96 s against 0.88 s a step), never
        for training.
    """

    def __init__(self, clip_norm: float | None = None, ema_decay: float | None = None,
                 jit_compile: bool = False, precision: str = "float32", initial_loss_scale: float = 2.0 ** 15,
                 traced: bool = True):
        if jit_compile and not traced:
            raise ConfigError("StepOptions.traced = False runs the step eagerly, which XLA cannot compile: "
                              "set StepOptions.jit_compile = False")
        self.clip_norm, self.ema_decay, self.jit_compile, self.precision = clip_norm, ema_decay, jit_compile, precision
        self.initial_loss_scale, self.traced = initial_loss_scale, traced


class TrainStep:
    """Counters, statistics and the traced loop of one training run.

    Args:
      strategy, model, task, optimizer, schedule: the run's parts (schedule(step) -> lr).
      options: a StepOptions.
      batches: the run's Batches: micro-steps per update, the global micro-batch each
        micro-step's loss is averaged over, the effective batch examples_seen counts, and
        the schedule's clock (its steps per update).
      lr_factors: scalar variables multiplied into the learning rate (plateau, guard).
    """

    def __init__(self, strategy, model, task, optimizer, schedule, options: StepOptions,
                 batches: Batches, lr_factors=()):
        self.strategy, self.model, self.task = strategy, model, task
        self.optimizer, self.schedule, self.options = optimizer, schedule, options
        self.batches, self.lr_factors = batches, list(lr_factors)
        float16 = options.precision == "mixed_float16"
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples_seen")
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_updates")
            # Dynamic loss scaling for float16: halved on a non-finite step, doubled after
            # LOSS_SCALE_PERIOD finite ones.
            self.loss_scale = tf.Variable(options.initial_loss_scale if float16 else 1.0, trainable=False,
                                          name="loss_scale")
            self.finite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="finite_steps")
        # Set by tfaudio.training.preemption's watcher thread; read by each replica before
        # every update and summed with the gradients, so all workers stop at one step.
        self.stop_request = tf.Variable(0, dtype=tf.int32, trainable=False, name="stop_request")
        self.model_vars: dict = {}
        self.ema: WeightEMA | None = None
        self._stats: dict = {}
        # A TPU compiles every step with XLA; elsewhere StepOptions.jit_compile asks for it.
        # The task is told, so it picks XLA-compatible ops (e.g. dense CTC labels).
        self.xla = task.xla = options.jit_compile or isinstance(strategy, tf.distribute.TPUStrategy)
        # Traced without AutoGraph: the loops are tf.while_loops as written, and the model
        # and task code the step calls is traced as is, not converted first (converting
        # it was a quarter of a tiny run's start-up).
        traced = (lambda fn: tf.function(fn, autograph=False)) if options.traced else (lambda fn: fn)
        self._loop = traced(self._loop_fn)
        compiled = (lambda fn: tf.function(fn, jit_compile=True, autograph=False)) if self.xla else (lambda fn: fn)
        self._grads = compiled(self._replica_grads)
        self._metrics = compiled(self._replica_metrics)
        # Validation batches vary in padded length: traced once per dataset signature (evaluate).
        self._eval = traced(self._eval_fn)

    def state(self) -> dict:
        """The checkpointed counters: {name: variable}."""
        state = dict(step=self.step, examples_seen=self.examples_seen, skipped=self.skipped)
        if self.options.precision == "mixed_float16":
            state.update(loss_scale=self.loss_scale, finite_steps=self.finite_steps)
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
        return state

    def build(self, batch) -> list[str]:
        """Creates the model's, optimizer's and EMA's variables from one batch (call in the
        strategy scope); returns the loss term names (`loss_<term>` in metrics.jsonl)."""
        _, terms = self.task.loss(self.model, batch, training=False)
        self.optimizer.build(self.model.trainable_variables)
        self.model_vars = named_variables(self.model)
        if self.options.ema_decay:
            self.ema = WeightEMA(self.model_vars, self.options.ema_decay)
        names = sorted(terms)
        # float32 on the device (TPUs have no float64): sums over one inner loop only.
        self._stats = {name: tf.Variable(0.0, dtype=tf.float32, trainable=False, name=name)
                       for name in ["loss", "count", "grad_norm", "input_wait", "skipped", "overflows", "lr",
                                "steps", "stopped"]
                       + [f"term_{t}" for t in names]}
        return names

    @property
    def stats_names(self) -> list[str]:
        """The statistics `loop` returns."""
        return list(self._stats)

    def weights_finite(self) -> bool:
        """True when no float model variable holds a NaN or an infinity."""
        return all(bool(tf.reduce_all(tf.math.is_finite(self.model_vars[n]))) for n in float_names(self.model_vars))

    def loop(self, iterator, num_steps: int) -> dict:
        """Runs up to num_steps updates (fewer when a stop is requested: "stopped" is then
        1); returns {statistic: float} summed over the "steps" it made."""
        return {k: float(v) for k, v in self._loop(iterator, tf.constant(num_steps)).items()}

    def evaluate(self, dataset, max_batches: int | None) -> dict:
        """{metric: mean over examples} of task.metrics on a distributed dataset (a metric
        may be a vector per example, e.g. a one-hot confusion cell) and "examples", the
        count, completed by task.corpus_metrics. The device part is summed over replicas
        per batch; the task's host metrics are summed here in numpy (64-bit) and over
        replicas once at the end."""
        totals: dict[str, np.ndarray] = {}
        host_totals: dict[str, np.ndarray] = {}
        # One trace for every padded length: the dataset's spec leaves lengths unknown.
        if self.options.traced:
            self._eval.get_concrete_function(dataset.element_spec)
        for i, batch in enumerate(dataset):
            if max_batches is not None and i >= max_batches:
                break
            sums, host = self._eval(batch)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
            for values in self.strategy.experimental_local_results(host):
                if not values:
                    continue
                values = {k: np.asarray(v) for k, v in values.items()}
                valid = values.pop("valid") > 0
                with tf.device("/cpu:0"):
                    per_example = self.task.host_metrics(values)
                for k, v in per_example.items():
                    host_totals[k] = host_totals.get(k, 0.0) + np.sum(np.asarray(v, np.float64)[valid], axis=0)
        totals.update(self._sum_over_workers(host_totals))
        count = max(float(totals.pop("count", 0.0)), 1.0)
        means = {k: float(v) / count if v.ndim == 0 else v / count for k, v in totals.items()}
        return self.task.corpus_metrics({**means, "examples": count})

    # ------------------------------------------------------------------ traced

    def _replica_grads(self, batch):
        """Gradients averaged over this replica's micro-batches and its loss sums."""
        n = self.batches.micro_steps
        tvars = self.model.trainable_variables

        def micro(i):
            return tf.nest.map_structure(
                lambda x: tf.reshape(x, tf.concat([[n, -1], tf.shape(x)[1:]], 0))[i], batch)

        def one(mb):
            with tf.GradientTape() as tape:
                per_example, terms = self.task.loss(self.model, mb, training=True)
                loss = tf.reduce_sum(tf.cast(per_example, tf.float32)) / self.batches.global_micro_batch
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

        def accumulate(i, grads, sums):
            g_i, s_i = one(micro(i))
            return i + 1, [a + b for a, b in zip(grads, g_i)], {k: sums[k] + s_i[k] for k in sums}
        # One micro-batch after another (not overlapped): accumulation is there to bound memory.
        _, grads, sums = tf.while_loop(lambda i, *_: i < n, accumulate, (tf.constant(1), *one(micro(0))),
                                       parallel_iterations=1)
        return [g / n for g in grads], sums

    def _all_reduced(self, fn, *args):
        """fn's values summed over replicas in one collective, as replica 0's copy."""
        def replica(*a):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, fn(*a))
        values = self.strategy.run(replica, args=args)
        return tf.nest.map_structure(lambda x: self.strategy.experimental_local_results(x)[0], values)

    def _replica_step(self, batch):
        grads, sums = self._grads(batch)
        return grads, dict(sums, stop=tf.cast(self.stop_request.read_value(), tf.float32))

    def _loop_fn(self, iterator, num_steps):
        for var in self._stats.values():
            var.assign(tf.zeros_like(var))

        def update(i, stopped):
            lr = self.schedule(self.step * self.batches.clock)
            for factor in self.lr_factors:
                lr = lr * factor
            self.optimizer.learning_rate.assign(lr)
            t0 = tf.timestamp()
            batch = next(iterator)
            self._stats["input_wait"].assign_add(tf.cast(tf.timestamp() - t0, tf.float32))
            grads, sums = self._all_reduced(self._replica_step, batch)
            stop = sums.pop("stop") > 0
            norm = tf.linalg.global_norm(grads)
            loss_finite = tf.math.is_finite(sums["loss"])
            finite = tf.math.is_finite(norm) & loss_finite
            # float16: finite loss, overflowing gradients at a scale above 1 is the loss
            # scale's business (halve and retry), not a non-finite update.
            overflow = tf.constant(False)
            if self.options.precision == "mixed_float16":
                overflow = loss_finite & ~finite & (self.loss_scale > 1.0)
                self._update_loss_scale(finite)
            if self.options.clip_norm:
                grads, _ = tf.clip_by_global_norm(grads, self.options.clip_norm, use_norm=norm)
            tf.cond(finite, lambda: self._apply(grads), lambda: self._skip(overflow))
            for key, value in sums.items():
                self._stats[key].assign_add(tf.cast(value, tf.float32))
            self._stats["grad_norm"].assign(tf.cast(norm, tf.float32))
            self._stats["lr"].assign(tf.cast(lr, tf.float32))
            self._stats["steps"].assign_add(1.0)
            self.step.assign_add(1)
            self.examples_seen.assign_add(self.batches.effective_batch)
            self._stats["stopped"].assign(tf.where(stop, 1.0, 0.0))
            return i + 1, stop

        tf.while_loop(lambda i, stopped: (i < num_steps) & ~stopped, update, (tf.constant(0), tf.constant(False)))
        return {k: v.read_value() for k, v in self._stats.items()}

    def _apply(self, grads):
        self.optimizer.apply(grads, self.model.trainable_variables)
        if self.ema is not None:
            self.ema.update()
        return tf.constant(True)

    def _skip(self, overflow):
        non_finite = tf.where(overflow, 0, 1)  # an overflow is counted apart
        self.skipped.assign_add(tf.cast(non_finite, tf.int64))
        self._stats["skipped"].assign_add(tf.cast(non_finite, tf.float32))
        self._stats["overflows"].assign_add(tf.cast(1 - non_finite, tf.float32))
        return tf.constant(False)

    def _update_loss_scale(self, finite):
        self.finite_steps.assign(tf.where(finite, self.finite_steps + 1, 0))
        grow = self.finite_steps >= LOSS_SCALE_PERIOD
        self.loss_scale.assign(tf.where(finite, tf.where(grow, self.loss_scale * 2.0, self.loss_scale),
                                        tf.maximum(self.loss_scale / 2.0, 1.0)))
        self.finite_steps.assign(tf.where(grow, tf.zeros_like(self.finite_steps), self.finite_steps))

    def _replica_metrics(self, batch):
        """(this replica's metric sums, its "host/" values) of one validation batch; rows
        a completed batch repeats ("valid" 0, tfaudio.data.pipeline.full_batch) count nowhere."""
        values = self.task.metrics(self.model, batch)
        valid = batch.get("valid", tf.ones_like(values["loss"], tf.float32))
        host = {k[len("host/"):]: v for k, v in values.items() if k.startswith("host/")}
        if host:
            host["valid"] = valid

        def total(v):
            keep = tf.reshape(valid > 0, [-1] + [1] * (v.shape.rank - 1))
            return tf.reduce_sum(tf.where(keep, tf.cast(v, tf.float32), 0.0), axis=0)
        sums = {k: total(v) for k, v in values.items() if not k.startswith("host/")}
        sums["count"] = tf.reduce_sum(valid)
        return sums, host

    def _eval_fn(self, batch):
        def replica(b):
            sums, host = self._metrics(b)
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, sums), host
        sums, host = self.strategy.run(replica, args=(batch,))
        return tf.nest.map_structure(lambda x: self.strategy.experimental_local_results(x)[0], sums), host

    def _sum_over_workers(self, totals: dict) -> dict:
        """`totals` of this worker summed over all workers (one collective per evaluation)."""
        if not totals:
            return totals
        calls = []

        def local(context):  # called once per local replica: the first carries this worker's totals
            calls.append(context)
            return {k: tf.constant(v if len(calls) == 1 else np.zeros_like(v), tf.float32) for k, v in totals.items()}
        summed = self._all_reduced(lambda v: v, self.strategy.experimental_distribute_values_from_function(local))
        return {k: np.asarray(v, np.float64) for k, v in summed.items()}

