"""A model's methods traced once per model, for any batch or length: the one cache of
traced inference functions (tasks' inference, synthesis, streaming separation)."""

from __future__ import annotations

import weakref

import tensorflow as tf

_TRACED = weakref.WeakKeyDictionary()  # model -> {method name: its traced function}


def traced_method(model, name: str):
    """`getattr(model, name)` traced once per model and method, for any batch or length
    (the traced function holds the model weakly, so a model that is gone is let go)."""
    per_model = _TRACED.setdefault(model, {})
    if name not in per_model:
        ref = weakref.ref(model)
        per_model[name] = tf.function(lambda *args, **kwargs: getattr(ref(), name)(*args, **kwargs),
                                      reduce_retracing=True, autograph=False)
    return per_model[name]


def forget(model) -> None:
    """Drops `model`'s traced methods, traced again at their next call: for a model whose
    structure changed (e.g. Tacotron's reduction factor, at its schedule's next phase)."""
    _TRACED.pop(model, None)
