"""The one owner of a run's `checkpoints/` and `checkpoints/best/`: what a checkpoint
holds, saving, strict resume, rollback and warm start.

A checkpoint holds every model variable by its attribute path (see
tfaudio.models.weights: trainable and not, BatchNorm statistics included), every
optimizer variable by position, the EMA shadows by the same paths as the model,
the task state, the step counters, the loss scale, the guard and the monitors.
Restoring is strict: a checkpoint that lacks any of them is a ConfigError naming
what is missing, never a silent partial load.
"""

from __future__ import annotations

import os

import gin
import tensorflow as tf
from absl import logging

from tfaudio.errors import ConfigError
from tfaudio.limits import METRIC, MODE, POSITIVE_INT, limits
from tfaudio.models import weights
from tfaudio.run_dir import BEST, CHECKPOINTS, latest_checkpoint


@gin.configurable
@limits(every=POSITIVE_INT, keep=POSITIVE_INT, best_metric=METRIC.or_none(), best_mode=MODE)
class CheckpointConfig:
    """When and what to save, and where a fresh run starts from.

    Args:
      every: updates between checkpoints (common/trainer.gin ties it to %eval_every).
      keep: checkpoints kept in checkpoints/.
      best_metric, best_mode: also keep the best checkpoint by this metric ("val/loss",
        "min") in checkpoints/best/.
      init_from: a run directory to warm-start from when model_dir has no checkpoint.
      init_modules: attribute paths of the modules to take from init_from (all if empty),
        e.g. ("encoder", "embedding").
    """

    def __init__(self, every: int = 1000, keep: int = 3, best_metric: str | None = None, best_mode: str = "min",
                 init_from: str | None = None, init_modules: tuple = ()):
        if init_modules and not init_from:
            raise ConfigError(f"CheckpointConfig.init_modules = {tuple(init_modules)} takes modules from a run: "
                              "name it with CheckpointConfig.init_from")
        if init_from and not latest_checkpoint(init_from):
            raise ConfigError(f"CheckpointConfig.init_from={init_from!r} has no checkpoint in {CHECKPOINTS}/")
        self.every, self.keep, self.best_metric, self.best_mode = every, keep, best_metric, best_mode
        self.init_from, self.init_modules = init_from, tuple(init_modules)


class RunCheckpoints:
    """Saves and restores a training run's whole state.

    Args:
      model_dir: the run directory.
      trees: {prefix: {name: variable}} saved as named trees ("model", "optimizer",
        "ema", "task"); every name must be in a checkpoint to restore it.
      objects: other checkpointable objects by name (counters, monitors, guard); None skipped.
      step: the global step variable (numbers the checkpoints).
      keep: checkpoints kept in checkpoints/; keep_best: also keep the best one in best/.
    """

    def __init__(self, model_dir: str, trees: dict, objects: dict, step, keep: int, keep_best: bool):
        self.trees = {prefix: named for prefix, named in trees.items() if named}
        self.checkpoint = tf.train.Checkpoint(
            **{prefix: weights.VariableTree(named) for prefix, named in self.trees.items()},
            **{name: obj for name, obj in objects.items() if obj is not None})
        directory = os.path.join(model_dir, CHECKPOINTS)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  step_counter=step)
        self.best_manager = (tf.train.CheckpointManager(self.checkpoint, os.path.join(directory, BEST),
                                                        max_to_keep=1, step_counter=step)
                             if keep_best else None)
        self.step = step

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self) -> str:
        return self.manager.save(checkpoint_number=self.step)

    def save_best(self) -> str:
        return self.best_manager.save(checkpoint_number=self.step)

    def restore(self, path: str) -> None:
        """Loads every tree and object from `path`; a ConfigError names what it lacks."""
        for prefix, named in self.trees.items():
            weights.require_names(path, prefix, named)
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise ConfigError(
                f"{path} does not fit this configuration ({str(exc).splitlines()[0][:200]}); resume "
                "with the run's own operative_config.gin or choose a new --model_dir") from None


def warm_start(model_vars: dict, run_dir: str, modules=()) -> tuple[list, list]:
    """Loads another run's weights into the model: all of them, or those under the
    attribute paths in `modules` (e.g. ("encoder", "embedding")). Returns (taken, left)
    variable names, and logs both; a named module the other run lacks is a ConfigError."""
    path = latest_checkpoint(run_dir)
    if not path:
        raise ConfigError(f"CheckpointConfig.init_from={run_dir!r} has no checkpoint in {CHECKPOINTS}/")
    wanted = [n for n in model_vars if not modules or any(n == m or n.startswith(m + "/") for m in modules)]
    unknown = [m for m in modules if not any(n == m or n.startswith(m + "/") for n in model_vars)]
    if unknown:
        raise ConfigError(f"CheckpointConfig.init_modules names {unknown}, which the model lacks; its top-level "
                          f"modules are {sorted({n.split('/')[0] for n in model_vars})}")
    weights.require_names(path, "model", wanted)
    weights.load_named(path, "model", model_vars, wanted)
    left = [n for n in model_vars if n not in wanted]
    logging.info("warm start from %s: took %d variables, left %d at their initial values%s", path,
                 len(wanted), len(left), (": " + ", ".join(left)) if left else "")
    return wanted, left
