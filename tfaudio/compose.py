"""Composes and runs one training from the parsed gin config: the one place where the
strategy, trackers, run record, model, task, optimizer, schedule and Trainer meet.
Used by `python -m tfaudio.train`, the tests and the benchmarks."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import gin
import keras

from tfaudio.experiment import build
from tfaudio.run_dir import checkpoint_step, latest_checkpoint
from tfaudio.training import run_record
from tfaudio.training.batch_plan import BatchPlan
from tfaudio.training.checkpoints import CheckpointConfig
from tfaudio.training.monitor import training_hooks
from tfaudio.training.optimizers import make_optimizer
from tfaudio.training.schedules import LearningRate
from tfaudio.training.step import StepOptions, TrainStep
from tfaudio.training.strategy import is_chief, make_strategy, worker_dir
from tfaudio.training.trackers import Trackers
from tfaudio.training.trainer import Trainer


def _not_sharding_line(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Sharding callback duration")


def quiet_checkpoint_logs() -> None:
    """Drops the INFO line TensorFlow's saver logs at every checkpoint through absl
    ("Sharding callback duration: ..."); tfaudio's own log lines stay."""
    absl_logger = logging.getLogger("absl")
    if _not_sharding_line not in absl_logger.filters:
        absl_logger.addFilter(_not_sharding_line)


def make_trainer(model_dir: str, strategy, seed: int = 0) -> Trainer:
    """The prepared Trainer of the parsed config: `build.model`, `build.task`,
    `make_optimizer.*`, `LearningRate.*`, `StepOptions.*`, `BatchPlan.*` (at the batch
    schedule's phase of the run's latest checkpoint), `CheckpointConfig.*` and
    `training_hooks.*` are built here, in the strategy's scope, after seeding (identical
    initial weights for one seed) and setting the dtype policy."""
    keras.utils.set_random_seed(seed)
    options = StepOptions()
    keras.mixed_precision.set_global_policy(options.precision)
    plan = BatchPlan()
    start = checkpoint_step(latest_checkpoint(model_dir))
    batches = plan.at(start, strategy.num_replicas_in_sync)
    schedule = LearningRate()
    schedule.set_horizon(plan.train_steps)
    schedule.set_effective_batch(batches.effective_batch)
    checkpoint = CheckpointConfig()
    with strategy.scope():
        model, task = build()
        # A model with a schedule of its own (Tacotron.reduction_schedule) is set to its phase
        # at the checkpoint's step; the run switches (saves and rebuilds) at its next change too.
        switches = [s for s in (batches.switch_step, model.phase(start) if hasattr(model, "phase") else None)
                    if s is not None]
        batches = dataclasses.replace(batches, switch_step=min(switches, default=None))
        optimizer = make_optimizer()
        hooks = training_hooks(checkpoint.best_metric, checkpoint.best_mode)
        step = TrainStep(strategy, model, task, optimizer, schedule, options, batches,
                         [h.lr_scale for h in hooks if hasattr(h, "lr_scale")])
    trainer = Trainer(model_dir=model_dir, strategy=strategy, step=step, batches=batches, hooks=hooks,
                      checkpoint=checkpoint, seed=seed)
    trainer.prepare()
    return trainer


def train(model_dir: str, strategy=None, tracker: str = "tensorboard", seed: int = 0, name: str = "",
          group: str = "", argv=None) -> tuple[Trainer, dict]:
    """Trains the parsed config into model_dir; returns the trainer and its last evaluation.

    Everything the run needs (data, model, task, optimizer, checkpoints) is built first:
    a configuration mistake raises ConfigError before the run record is written, and
    a run directory this call created is removed again (on any failure to build). Then the chief writes the run
    record (command.txt, config.gin, versions.json) when `argv` is given; other
    workers write to their own folder, without trackers."""
    quiet_checkpoint_logs()
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    own_dir = worker_dir(model_dir, strategy)
    created = not os.path.exists(model_dir)
    try:
        os.makedirs(own_dir, exist_ok=True)
        trainer = make_trainer(own_dir, strategy, seed=seed)
    except Exception:  # a ConfigError above all; any failure to build leaves no folder behind
        if created:
            shutil.rmtree(model_dir, ignore_errors=True)
        raise
    if chief and argv is not None:
        run_record.write_provenance(model_dir, argv)
    trackers = Trackers(own_dir, tracker if chief else "none", name=name, group=group,
                        config={"gin": gin.config_str(), "seed": seed})
    description = run_record.describe_model(trainer.model)
    trackers.log({"step": trainer.global_step, "event": "model", **description})
    logging.getLogger("absl").info("model: %s", ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:.4g}"
                                        for k, v in description.items()))
    try:
        results = trainer.train(trackers)
        while trainer.switching:  # a batch or model schedule's next phase: rebuilt, resumed
            trainer = make_trainer(own_dir, strategy, seed=seed)
            results = trainer.train(trackers)
        return trainer, results
    finally:
        trackers.close()
