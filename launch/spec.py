"""A study spec: a base experiment and stages of variants, each variant a set of gin
bindings. A spec is a Python file defining `STUDY = Study(...)`:

    STUDY = Study(
        name="ctc_sequential", question="Which settings train the dilated CTC network best?",
        gin_files=["gin/ctc_dilated_small.gin"], bindings=["Trainer.max_minutes = 4"],
        metric="val/cer", mode="min",
        stages=[
            Stage("padding", {"padding-off": ["padding = False"], "padding-on": ["padding = True"]}),
            Stage("batch", lambda opt: {  # the trainer scales the rate from the winning batch
                f"batch{b}-lr{m}x": [f"batch_size = {b}", f"LearningRate.reference_batch_size = {opt.batch_size}",
                                     f"learning_rate = {opt.learning_rate * m:.3g}"]
                for b in (4, 16) for m in (0.5, 1, 2)}),
        ])

A stage's variants are a dict {name: bindings} or a function of `opt`, the settings
found so far: every binding of every earlier stage's winner, and for anything no stage
has set yet, the base experiment's value (`opt.learning_rate` reads the
`learning_rate` macro, `opt["BatchPlan.batch_size"]` a binding). Every run of a stage
gets the base bindings, then the winners' bindings, then its variant's. A grid is one
stage whose variants are a product (`grid(...)`); a list of named variants is one stage.
Each stage picks its winner by `metric` ("<split>/<name>", e.g. "val/cer",
"val_ema/si_sdr_i"), `mode` ("min" or "max") and `at` ("final": the last evaluation;
"best": the best one), defaulting to the study's. `early_stopping=ASHA(reduction=3)`
(study or stage) stops the runs that are clearly losing at rungs of their evaluations
(launch/halving.py); they stay in the report and never win.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import itertools
from typing import Callable

from launch.halving import ASHA


@dataclasses.dataclass
class Stage:
    name: str
    variants: dict | Callable
    metric: str | None = None
    mode: str | None = None
    at: str | None = None
    early_stopping: ASHA | None = None


@dataclasses.dataclass
class Study:
    name: str
    question: str
    gin_files: list
    stages: list
    bindings: list = dataclasses.field(default_factory=list)
    metric: str = "val/loss"
    mode: str = "min"
    at: str = "final"
    early_stopping: ASHA | None = None

    def rule(self, stage: Stage) -> tuple[str, str, str]:
        """(metric, mode, at) that picks `stage`'s winner."""
        metric, mode, at = stage.metric or self.metric, stage.mode or self.mode, stage.at or self.at
        if mode not in ("min", "max") or at not in ("final", "best") or "/" not in metric:
            raise ValueError(f"stage {stage.name!r}: metric {metric!r} must be '<split>/<name>', mode 'min' or "
                             f"'max', at 'final' or 'best'")
        return metric, mode, at


def grid(**axes) -> dict:
    """{name: bindings} of the product of named axes, each {value name: [bindings]}:
    grid(opt={"adam": [...], "adamax": [...]}, lr={"1e-3": [...]}) -> "adam-1e-3": [...]."""
    names = list(axes)
    out = {}
    for combo in itertools.product(*(axes[n].items() for n in names)):
        out["-".join(label for label, _ in combo)] = [b for _, bindings in combo for b in bindings]
    return out


def binding_value(binding: str):
    """(name, value) of "name = value"; the value as a Python literal when it is one."""
    name, _, text = binding.partition("=")
    text = text.strip()
    try:
        return name.strip(), ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return name.strip(), text


class Opt:
    """The settings carried forward: the earlier winners' bindings over the base
    experiment's values (read from its gin files and bindings when first asked)."""

    def __init__(self, study: Study, winners: list[list[str]]):
        self._study = study
        self.bindings = {}
        for bindings in [study.bindings] + winners:
            for binding in bindings:
                name, value = binding_value(binding)
                self.bindings[name] = value

    def __getitem__(self, name: str):
        if name in self.bindings:
            return self.bindings[name]
        return base_value(self._study, name)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def as_bindings(self) -> list[str]:
        return [f"{k} = {v!r}" for k, v in self.bindings.items()]


def base_value(study: Study, name: str):
    """The base experiment's value of a macro (`learning_rate`) or binding (`BatchPlan.batch_size`)."""
    import gin

    from tfaudio import compose, config  # noqa: F401  (compose: every configurable a gin file names)

    config.parse(study.gin_files, list(study.bindings), finalize=False)
    try:
        return config.query(name if "." in name else f"%{name}")
    finally:
        gin.clear_config()


def variants_of(stage: Stage, opt: Opt) -> dict:
    """{variant name: bindings} of a stage given the settings carried forward."""
    variants = stage.variants(opt) if callable(stage.variants) else stage.variants
    if not variants:
        raise ValueError(f"stage {stage.name!r} has no variants")
    return {name: list(bindings) for name, bindings in variants.items()}


def load(path: str) -> Study:
    """The STUDY defined by a spec file."""
    spec = importlib.util.spec_from_file_location("study_spec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not isinstance(getattr(module, "STUDY", None), Study):
        raise ValueError(f"{path}: defines no STUDY = Study(...)")
    return module.STUDY
