"""An experiment's model and task: built from gin for training, or restored from a run
directory for inference (synthesize, separate). Imports no training code."""

from __future__ import annotations

import gin
import tensorflow as tf

from tfaudio import config, registry  # noqa: F401  (registry: every configurable a run names)
from tfaudio.errors import ConfigError
from tfaudio.models import weights
from tfaudio.run_dir import CHECKPOINTS, checkpoint_step, latest_checkpoint


@gin.configurable
def build(model=gin.REQUIRED, task=gin.REQUIRED):
    """The network and its task (losses, metrics, inference), from `build.model` and
    `build.task`; shared by training and restore."""
    return model, task


def restore_for_inference(run_dir: str, checkpoint: str | None = None, use_ema: bool = True,
                          require: str | None = None, gin_params=()):
    """(model, task) rebuilt from a run's operative config with every weight loaded from its
    latest (or the given) checkpoint: the EMA weights when the run kept them and use_ema.
    A checkpoint that lacks any model variable is a ConfigError naming them. `require`
    names a task method the caller needs (e.g. "synthesize"); `gin_params` override the
    run's inference settings (e.g. "TacotronTask.griffin_lim_iterations = 100")."""
    config.load_run_config(run_dir, gin_params)
    path = checkpoint or latest_checkpoint(run_dir)
    if not path:
        raise ConfigError(f"{run_dir}: no checkpoint in {CHECKPOINTS}/; train first or pass --checkpoint")
    if not tf.io.gfile.exists(path + ".index"):
        raise ConfigError(f"--checkpoint={path}: no such checkpoint (give a path such as "
                          f"{latest_checkpoint(run_dir) or run_dir + '/checkpoints/ckpt-1000'}, without .index)")
    model, task = build()
    if require and not hasattr(task, require):
        raise ConfigError(f"{run_dir} trained a {type(task).__name__}, which cannot {require}")
    task.build_for_inference(model)
    load_checkpoint(model, task, path, use_ema)
    return model, task


def load_checkpoint(model, task, path: str, use_ema: bool = True) -> None:
    """Loads checkpoint `path` into a built model and its task's state (the EMA weights
    when the run kept them and use_ema): another checkpoint of the same run, without
    rebuilding or retracing (but where a model schedule, e.g. Tacotron.reduction_schedule,
    is in another phase at its step: the model is set to it)."""
    if hasattr(model, "phase"):
        model.phase(checkpoint_step(path))
    state = task.state
    weights.restore_weights(path, weights.named_variables(model),
                            weights.named_variables(state) if state is not None else None, use_ema)
