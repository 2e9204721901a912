"""Stable names for every variable of a model, and checkpoint trees built from them.

Keras 3 keeps sub-layers held in Python lists in its own tracked containers, which
`tf.train.Checkpoint` does not follow, so a checkpoint of a Keras model object
silently leaves out layers kept in lists or tuples. tfaudio therefore never
checkpoints Keras objects: it names every variable by the attribute path that
reaches it from the model (`encoder/convs/0/norm/moving_mean`), checks that the
names cover `model.variables` exactly, and saves a tree of those names.

The layers of a functional model (keras.applications, Sequential) are named by their
position, `network/layers/12/kernel`. The same names work for `tf.Module`s (task state) and for optimizer variables
(by position). A checkpoint key is `<prefix>/<name>/.ATTRIBUTES/VARIABLE_VALUE`.
"""

from __future__ import annotations

import math
import re

import keras
import tensorflow as tf
from keras.src.models.functional import Functional

from tfaudio.errors import ConfigError

# Keras bookkeeping attributes that alias children already reachable by name.
_KERAS_ALIASES = frozenset({
    "_layers", "_trainable_variables", "_non_trainable_variables", "_seed_generators", "_metrics",
    "_tracker", "_tracked", "_inbound_nodes", "_outbound_nodes", "_losses", "_loss_ids",
    "_self_unconditional_checkpoint_dependencies", "_self_unconditional_dependency_names",
    "_self_unconditional_deferred_dependencies", "_self_saveable_object_factories",
    "_compile_metrics", "_compile_loss", "_loss_tracker", "_metrics_zero_state",
})
_VARIABLE_TYPES = (keras.Variable, tf.Variable)
_CONTAINERS = (keras.layers.Layer, tf.Module, keras.random.SeedGenerator)


class UnnamedVariablesError(ValueError):
    """A model holds variables that no attribute path reaches, so they could not be saved."""


def _component(key) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(key))


def named_variables(root) -> dict:
    """{attribute path: variable} for every variable reachable from `root` (a Keras layer or
    model, or a tf.Module), each once (the first path in sorted attribute order).

    Raises UnnamedVariablesError, naming them, when `root.variables` holds a variable
    that no path reaches."""
    named: dict = {}
    seen: set[int] = set()

    def visit(obj, path):
        if isinstance(obj, _VARIABLE_TYPES):
            if id(obj) not in seen:
                seen.add(id(obj))
                named[path] = obj
            return
        if isinstance(obj, _CONTAINERS):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if isinstance(obj, Functional):  # keras.applications, Sequential: layers by position
                for i, layer in enumerate(obj.layers):
                    visit(layer, f"{path}/layers/{i}" if path else f"layers/{i}")
            for attr in sorted(vars(obj)):
                value = vars(obj)[attr]
                if attr in _KERAS_ALIASES or (attr.startswith("_") and isinstance(value, (list, dict, set))):
                    continue
                visit(value, f"{path}/{_component(attr)}" if path else _component(attr))
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                visit(item, f"{path}/{i}")
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                visit(obj[key], f"{path}/{_component(key)}")

    visit(root, "")
    unnamed = [getattr(v, "path", v.name) for v in root.variables if id(v) not in seen]
    if unnamed:
        raise UnnamedVariablesError(
            f"{type(root).__name__} holds {len(unnamed)} variable(s) that no attribute reaches, so they "
            f"cannot be checkpointed: {', '.join(unnamed[:8])}; keep layers in attributes, lists, "
            "tuples or dicts (not in private collections)")
    return named


def parameter_count(layer, trainable: bool = True) -> int:
    """Trainable (or else non-trainable) parameters of a layer or model; published counts
    leave out BatchNorm's moving statistics, which are non-trainable."""
    return int(sum(math.prod(v.shape) for v in (layer.trainable_weights if trainable else
                                                  layer.non_trainable_weights)))


def float_names(named: dict) -> list[str]:
    """The names of the floating-point variables among `named` (the ones an EMA averages)."""
    return [n for n, v in named.items() if tf.as_dtype(v.dtype).is_floating]


def indexed_variables(variables) -> dict:
    """{position: variable} for variables whose order is their identity (optimizer slots)."""
    return {f"{i:04d}": v for i, v in enumerate(variables)}


class VariableTree(tf.Module):
    """A checkpointable tree of named variables: name "a/b/c" is saved under a/b/c."""

    def __init__(self, named: dict):
        super().__init__(name=None)
        self._names = sorted(named)
        nested: dict = {}
        for name, variable in named.items():
            node = nested
            *parents, leaf = name.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = variable
        self.tree = nested

    @property
    def names(self) -> list[str]:
        return self._names


def checkpoint_key(prefix: str, name: str) -> str:
    """The key under which `tf.train.Checkpoint(<prefix>=VariableTree(...))` stores `name`."""
    return f"{prefix}/tree/{name}/.ATTRIBUTES/VARIABLE_VALUE"


def missing_names(path: str, prefix: str, names) -> list[str]:
    """The names among `names` that checkpoint `path` does not hold under `prefix`."""
    stored = {key for key, _ in tf.train.list_variables(path)}
    return [name for name in names if checkpoint_key(prefix, name) not in stored]


def load_named(path: str, prefix: str, named: dict, names=None) -> None:
    """Assigns checkpoint `path`'s values under `prefix` to `named` variables (all, or those
    in `names`), reading tensors directly: no object graph, no partial matches. Shapes must
    agree; the caller checks presence first with `missing_names`."""
    reader = tf.train.load_checkpoint(path)
    for name in (names if names is not None else named):
        variable = named[name]
        value = reader.get_tensor(checkpoint_key(prefix, name))
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{path}: {name} has shape {tuple(value.shape)} in the checkpoint but "
                             f"{tuple(variable.shape)} in the model")
        variable.assign(tf.cast(value, variable.dtype))


def require_names(path: str, prefix: str, names) -> None:
    """Raises a ConfigError naming the `names` that checkpoint `path` lacks under `prefix`."""
    names = list(names)
    missing = missing_names(path, prefix, names)
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise ConfigError(f"{path} lacks {len(missing)} of {len(names)} {prefix} variables ({shown}): it "
                          "was written by another configuration or by a tfaudio that saved partial models; "
                          "use the run's own operative_config.gin, or retrain")


def restore_weights(path: str, model_vars: dict, state_vars: dict | None = None, use_ema: bool = True) -> bool:
    """Loads a checkpoint's model weights (its EMA shadows instead when it has them and
    use_ema) and task state into named variables, strictly. Returns whether EMA weights
    were loaded."""
    require_names(path, "model", model_vars)
    load_named(path, "model", model_vars)
    if state_vars:
        require_names(path, "task", state_vars)
        load_named(path, "task", state_vars)
    floats = float_names(model_vars)
    if not use_ema or len(missing_names(path, "ema", floats)) == len(floats):
        return False
    require_names(path, "ema", floats)
    load_named(path, "ema", model_vars, floats)
    return True
