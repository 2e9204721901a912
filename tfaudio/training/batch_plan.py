"""How a run batches its examples: the batch-size study's knobs, and every batch quantity
the trainer, the step and the pipelines use, computed once and named for which batch.

Batch names: the *micro-batch* is what one replica feeds the model at once; the
*replica step batch* is what one replica reads per update (micro-batch x micro-steps);
the *global micro-batch* is one micro-batch over all replicas (validation's batch); the
*effective batch* is what one update sees over all replicas.
"""

from __future__ import annotations

import dataclasses

import gin

from tfaudio.limits import POSITIVE_INT, Choice, limits, phases


@dataclasses.dataclass(frozen=True)
class Batches:
    """The batch quantities of one run (or one phase of a batch schedule), in examples."""

    micro_batch: int  # per replica per forward pass
    micro_steps: int  # micro-batches accumulated per update per replica
    replicas: int
    clock: int  # baseline steps per update (the multiplier): the schedule, evaluations, saves count in them
    updates: int  # optimizer updates of the whole run
    switch_step: int | None  # the update at which the batch (or model) schedule's next phase starts, or None
    mode: str  # "accumulate" or "true"

    @property
    def replica_step_batch(self) -> int:
        return self.micro_batch * self.micro_steps

    @property
    def global_micro_batch(self) -> int:
        return self.micro_batch * self.replicas

    @property
    def effective_batch(self) -> int:
        return self.global_micro_batch * self.micro_steps


@gin.configurable
@limits(batch_size=POSITIVE_INT, train_steps=POSITIVE_INT, accumulate_n=POSITIVE_INT, multiplier=POSITIVE_INT,
        mode=Choice("accumulate", "true"),
        schedule=phases("batch size"))
class BatchPlan:
    """The run's batches (common/trainer.gin binds the `batch_size`, `train_steps` and
    `accumulate_n` macros here).

    Args:
      batch_size: the micro-batch, examples per replica per forward pass.
      train_steps: optimizer updates of the baseline run (multiplier 1).
      accumulate_n: micro-batches whose gradients are averaged per update.
      multiplier: k makes the effective batch k times larger (see mode); the run makes
        train_steps / k updates and counts the learning-rate schedule, evaluations and
        checkpoints in baseline steps (k per update): it evaluates and saves at the first
        update that reaches each multiple of Trainer.eval_every and CheckpointConfig.every,
        so runs of any k meet the same learning rates and evaluations at the same examples
        (exactly when k divides the intervals). The batch-size study's one knob.
      mode: how the multiplier enlarges the batch: "accumulate" (k micro-batches of
        batch_size, gradients averaged; BatchNorm sees one micro-batch) or "true" (the
        pipeline delivers micro-batches of k x batch_size).
      schedule: ((update step, batch_size), ...): from each step on, train at that batch
        (the learning rate follows through LearningRate's scaling rule). The trainer saves
        at each switch and tfaudio.compose rebuilds it at the new batch, as a resume
        does; examples seen carry on, and the data continues where it was.
    """

    def __init__(self, batch_size: int = gin.REQUIRED, train_steps: int = gin.REQUIRED, accumulate_n: int = 1,
                 multiplier: int = 1, mode: str = "accumulate", schedule=()):
        self.batch_size, self.train_steps, self.accumulate_n = batch_size, train_steps, accumulate_n
        self.multiplier, self.mode = multiplier, mode
        self.schedule = sorted((int(s), int(b)) for s, b in schedule)

    def at(self, step: int, replicas: int) -> Batches:
        """The batches from update `step` on (the schedule's phase there) with `replicas` replicas."""
        batch_size = self.batch_size
        for start, batch in self.schedule:
            if start <= step:
                batch_size = batch
        later = [s for s, _ in self.schedule if s > step]
        true = self.multiplier if self.mode == "true" else 1
        return Batches(micro_batch=batch_size * true, micro_steps=self.accumulate_n * self.multiplier // true,
                       replicas=replicas, clock=self.multiplier, updates=max(1, self.train_steps // self.multiplier),
                       switch_step=later[0] if later else None, mode=self.mode)
