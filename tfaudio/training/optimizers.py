"""Optimizers (Keras 3's own, LAMB included) with biases and normalisation weights
excluded from weight decay."""

from __future__ import annotations

import gin
import keras

from tfaudio.limits import NON_NEGATIVE, POSITIVE, RATE, Choice, limits

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "adamax": keras.optimizers.Adamax,
    "adagrad": keras.optimizers.Adagrad,
    "sgd": keras.optimizers.SGD,
    "lamb": keras.optimizers.Lamb,
}

# Keras 3 variable names: Dense/Conv "bias"; BatchNorm/LayerNorm "gamma" and "beta".
NO_DECAY_NAMES = ("bias", "gamma", "beta")


@gin.configurable
@limits(name=Choice(*OPTIMIZERS), weight_decay=NON_NEGATIVE.or_none(), momentum=RATE, beta_1=RATE, beta_2=RATE,
        epsilon=POSITIVE)
def make_optimizer(name: str = "adam", weight_decay: float | None = None, momentum: float = 0.0,
                   beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                   nesterov: bool = False, exclude_from_decay=NO_DECAY_NAMES) -> keras.Optimizer:
    """Builds an optimizer; its learning rate is set every step by the trainer's schedule.

    Args:
      name: adam, adamw, adamax, adagrad, sgd or lamb.
      weight_decay: decoupled weight decay (AdamW default 0.004, others none).
      momentum, nesterov: for sgd.
      beta_1, beta_2: for adam, adamw, adamax and lamb.
      epsilon: numerical stabiliser.
      exclude_from_decay: variable-name fragments never decayed.
    """
    key = name
    kwargs = {"learning_rate": 0.0, "epsilon": epsilon}
    if key in ("adam", "adamw", "adamax", "lamb"):
        kwargs.update(beta_1=beta_1, beta_2=beta_2)
    if key == "sgd":
        kwargs = {"learning_rate": 0.0, "momentum": momentum, "nesterov": nesterov}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    optimizer = OPTIMIZERS[key](**kwargs)
    if exclude_from_decay:
        optimizer.exclude_from_weight_decay(var_names=list(exclude_from_decay))
    return optimizer
