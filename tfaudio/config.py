"""Strict gin parsing: search paths, unknown names, wrong types, one clear error line.

`parse()` fails before any work on a misspelt binding, an unknown configurable,
a missing file or a value of the wrong type, with the file, the line and the
closest valid name, as a `ConfigError` (one line, no TensorFlow traceback).
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import types
import typing

import gin
from gin import config_parser

from tfaudio.errors import ConfigError
from tfaudio.limits import declared, resolve_macros, violation
from tfaudio.run_dir import OPERATIVE_CONFIG

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def _registered_names() -> list[str]:
    names = set()
    for selector, _ in gin.config._REGISTRY.items():
        names.add(selector)
        names.add(selector.split(".")[-1])
    return sorted(names)


def _configurable(selector: str):
    try:
        return gin.config._REGISTRY.get_match(selector)
    except (KeyError, ValueError):
        return None


def _signature_target(fn):
    return fn.__init__ if inspect.isclass(fn) else fn


def _parameter_names(configurable) -> list[str]:
    params = inspect.signature(_signature_target(configurable.wrapped)).parameters
    return [p for p in params if p not in ("self", "args", "kwargs")]


# Keyword arguments every Keras layer accepts through **kwargs.
KERAS_LAYER_KWARGS = ("name", "dtype", "trainable", "autocast")


def _takes_kwargs(configurable) -> bool:
    """Whether the configurable swallows unknown keywords (Keras classes do), which gin
    cannot check; the strict pass checks those names itself."""
    params = inspect.signature(_signature_target(configurable.wrapped)).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


# Configurables renamed since they shipped: {old: new}; an old name is one line naming the new.
RENAMED = {"ParallelTacotron": "DurationTacotron"}
# Bindings moved since they shipped: {old: new}; in an experiment file one line naming the
# new, in a run's operative config read as the new.
MOVED = {"Trainer.batch_size": "BatchPlan.batch_size", "Trainer.train_steps": "BatchPlan.train_steps",
         "Trainer.accumulate_n": "BatchPlan.accumulate_n", "Trainer.batch_multiplier": "BatchPlan.multiplier",
         "Trainer.batch_mode": "BatchPlan.mode", "Trainer.batch_schedule": "BatchPlan.schedule",
         "Trainer.early_stopping": "training_hooks.early_stopping", "Trainer.plateau": "training_hooks.plateau",
         "Trainer.guard": "training_hooks.guard"}


def _closest(word: str, candidates) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _binding(params, line: int) -> str:
    lines = "\n".join(params).splitlines()
    return f"<--gin_param> {lines[line - 1].strip()!r}: " if 0 < line <= len(lines) else "<--gin_param>: "


def _explain(exc: Exception, params=()) -> str:
    """Turns gin's multi-line error into one line with a suggestion; `params` are the
    --gin_param bindings, quoted when the error is in one of them."""
    text = str(exc)
    where = ""
    loc = re.search(r'In (?:file|bindings string) "?([^",\n]*)"?,? line (\d+)', text)
    if loc:
        where = (f"{loc.group(1)}:{loc.group(2)}: " if loc.group(1) and "bindings string" not in loc.group(0)
                 else _binding(params, int(loc.group(2))))
    elif isinstance(exc, SyntaxError) and exc.lineno:
        where = f"{exc.filename}:{exc.lineno}: " if exc.filename else _binding(params, exc.lineno)
    first = text.strip().splitlines()[0].strip()
    hint = ""
    m = re.search(r"No configurable matching (?:reference )?'@?([\w./]+?)(?:\(\))?'", first)
    if m:
        name = m.group(1).split("/")[-1]
        hint = (f" {name} was renamed {RENAMED[name]}: write {RENAMED[name]} instead." if name in RENAMED
                else _closest(name, _registered_names()))
    m = re.search(r"Configurable '([\w./]+)' doesn't have a parameter named '(\w+)'", first)
    if m:
        configurable = _configurable(m.group(1))
        old = f"{m.group(1).split('/')[-1].split('.')[-1]}.{m.group(2)}"
        if old in MOVED:
            hint = f" {old} moved: write {MOVED[old]} instead."
        elif configurable:
            hint = _closest(m.group(2), _parameter_names(configurable))
    return f"{where}{first}{hint}"


def _type_ok(value, annotation) -> bool:
    """Whether a literal gin value fits a parameter annotation (unknown types pass)."""
    if annotation is inspect.Parameter.empty or annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is not None:
        annotation = origin
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool, dict):
        return isinstance(value, annotation)
    if annotation in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple))
    return True


def _statements(text: str, filename: str | None, search_paths, skip_unknown: bool = False):
    """Every binding statement of a gin text (includes followed) with its location."""
    delegate = gin.config.ParserDelegate(skip_unknown=skip_unknown)
    parser = config_parser.ConfigParser(_Named(text, filename), delegate)
    for statement in parser:
        if isinstance(statement, config_parser.BindingStatement):
            yield statement
        elif isinstance(statement, config_parser.IncludeStatement):
            path = resolve_gin_file(statement.filename, search_paths)
            with open(path, encoding="utf-8") as f:
                yield from _statements(f.read(), path, search_paths, skip_unknown)


class _Named:
    """A readline()-able text carrying a file name, as gin's parser expects."""

    def __init__(self, text, name):
        self._lines = iter(text.splitlines(keepends=True))
        self.name = name

    def readline(self):
        return next(self._lines, "")


def _check_types(gin_files, gin_params, search_paths, skip_unknown: bool = False):
    sources = []
    for path in gin_files:
        with open(path, encoding="utf-8") as f:
            sources.append((f.read(), path))
    sources.append(("\n".join(gin_params), None))
    last = {}
    for text, filename in sources:
        for st in _statements(text, filename, search_paths, skip_unknown):
            if not st.arg_name:
                continue
            configurable = _configurable(st.selector)
            if configurable is None:
                continue
            where = f"{st.location.filename}:{st.location.line_num}: " if st.location.filename else "--gin_param: "
            last[(st.scope, st.selector, st.arg_name)] = where, configurable, st.value
            names = _parameter_names(configurable)
            if _takes_kwargs(configurable) and st.arg_name not in names + list(KERAS_LAYER_KWARGS):
                raise ConfigError(f"{where}Configurable '{st.selector}' doesn't have a parameter named "
                                  f"'{st.arg_name}'.{_closest(st.arg_name, names)}")
            value = resolve_macros(st.value)
            if isinstance(value, gin.config.ConfigurableReference):
                continue
            try:
                hints = typing.get_type_hints(_signature_target(configurable.wrapped))
            except Exception:  # annotations that cannot be resolved are not checked
                continue
            annotation = hints.get(st.arg_name, inspect.Parameter.empty)
            if not _type_ok(value, annotation):
                expected = getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
                raise ConfigError(f"{where}{st.selector}.{st.arg_name} = {value!r} has type "
                                  f"{type(value).__name__}; expected {expected}.")
    _check_limits(last)


def _check_limits(last):
    """Every bound value against its declared limit (tfaudio.limits), as finally bound;
    `last` maps (scope, selector, parameter) to its last binding's location, configurable
    and value as written (a %macro is named in the message)."""
    for (scope, selector, name), (where, configurable, written) in last.items():
        limit = declared(configurable.wrapped).get(name)
        if limit is None:
            continue
        value = resolve_macros(gin.query_parameter(f"{scope + '/' if scope else ''}{selector}.{name}"))
        if isinstance(value, gin.config.ConfigurableReference):
            continue
        problem = violation(selector.split(".")[-1], name, value, limit)
        if problem:
            macro = (written.scoped_selector.split("/")[0] if isinstance(written, gin.config.ConfigurableReference)
                     and written.configurable.wrapped is gin.config.macro else None)
            raise ConfigError(where + (problem.replace(" = ", f" = %{macro} = ", 1) if macro else problem))


def query(binding: str):
    """The value bound to `binding` (e.g. "AudioData.fixed_seconds"), macros followed."""
    return resolve_macros(gin.query_parameter(binding))


def resolve_gin_file(name: str, search_paths) -> str:
    """The path of a gin file given as-is, relative to a search path, under gin/, or
    relative to the repository ("gin/audio_unet.gin" from any folder)."""
    candidates = [name] + [os.path.join(p, name) for p in search_paths]
    candidates.append(os.path.join(os.path.dirname(REPO_GIN_DIR), name))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(f"gin file {name!r} not found (searched: . {' '.join(search_paths)}); "
                      "pass a path or add --gin_search_path")


def parse(gin_files=(), gin_params=(), search_paths=(), finalize: bool = True, skip_unknown: bool = False):
    """Parses files and bindings strictly: an unknown configurable or parameter, a wrong
    type or a missing file is a ConfigError. The caller imports the modules whose
    configurables it uses first (tfaudio.registry; training adds tfaudio.training).
    skip_unknown ignores bindings of configurables that are not imported (a run's
    operative config read by an inference command that loads no training code)."""
    search_paths = list(search_paths) + [REPO_GIN_DIR]
    gin.clear_config()
    for path in search_paths:
        gin.add_config_file_search_path(path)
    files = [resolve_gin_file(f, search_paths) for f in gin_files]
    # gin logs an ERROR line for every include it first looks up as a Python package
    # resource before trying the search paths; real failures surface as ConfigError.
    logging.disable(logging.CRITICAL)
    try:
        gin.parse_config_files_and_bindings(files, list(gin_params), finalize_config=False,
                                            skip_unknown=skip_unknown)
    except (ValueError, SyntaxError, KeyError) as exc:
        raise ConfigError(_explain(exc, gin_params)) from None
    except IOError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    finally:
        logging.disable(logging.NOTSET)
    _check_types(files, gin_params, search_paths, skip_unknown)
    if finalize:
        gin.finalize()
    return files


def _moved_to_new(text: str) -> str:
    """A run's operative config with bindings that moved since it was written at their new place."""
    for old, new in MOVED.items():
        text = re.sub(rf"^{re.escape(old)}\b", new, text, flags=re.M)
    return text


def load_run_config(run_dir: str, extra_params=()):
    """Parses a run directory's operative config (for restoring a model to use it), then
    `extra_params` (inference overrides) strictly."""
    path = os.path.join(run_dir, OPERATIVE_CONFIG)
    if not os.path.isfile(path):
        raise ConfigError(f"{run_dir}: no operative_config.gin; is this a tfaudio run directory "
                          "that trained at least one step?")
    with open(path) as f:
        text = f.read()
    for old, new in RENAMED.items():
        if re.search(rf"\b{old}\b", text):
            raise ConfigError(f"{path} names {old}, since renamed {new}: run "
                              f"sed -i 's/\\b{old}\\b/{new}/g' {path}")
    parse([], finalize=False)
    try:
        gin.parse_config(_moved_to_new(text), skip_unknown=True)
    except (ValueError, SyntaxError, KeyError) as exc:
        raise ConfigError(f"{path}: {_explain(exc).removeprefix('<--gin_param>: ')}") from None
    try:
        gin.parse_config(list(extra_params))
    except (ValueError, SyntaxError, KeyError) as exc:
        raise ConfigError(_explain(exc, extra_params)) from None
    _check_types([], extra_params, [])
    gin.finalize()
