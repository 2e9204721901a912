"""Declared limits (tfaudio.limits): every numeric or enumerated parameter of every
configurable declares its valid values, and the training command refuses each value a
declaration rejects with one line, exit code 2 and no run directory. The cases are
generated from the declarations, so a new parameter is swept once it declares them."""

import inspect

import gin
import pytest

from tfaudio import compose, config, limits  # noqa: F401  (compose registers every configurable)
from tfaudio.errors import ConfigError

from test_cli import wrong

# Parameters that name things (folders, splits, stems, modules) or take other
# configurables; every other non-boolean parameter must declare its values.
FREE = {"data_dir", "train_split", "val_split", "cache_dir", "target", "others", "init_from", "init_modules",
        "exclude_from_decay", "log_compression", "text_encoder", "vocabulary", "decay", "data", "checkpoint",
        "early_stopping", "plateau", "model", "task"}


def _configurables():
    """(gin name, configurable) of every tfaudio configurable."""
    return [(selector.split(".")[-1], c) for selector, c in sorted(gin.config._REGISTRY.items())
            if selector.startswith("tfaudio")]


def _parameters(configurable):
    params = inspect.signature(config._signature_target(configurable.wrapped)).parameters
    return {name: p for name, p in params.items()
            if name not in ("self", "args", "kwargs") and name not in (configurable.denylist or ())}


def _boolean(parameter) -> bool:
    return isinstance(parameter.default, bool) or "bool" in str(parameter.annotation)


CASES = [(name, param, limit) for name, c in _configurables() for param, limit in limits.declared(c.wrapped).items()]


def test_every_numeric_or_enumerated_parameter_declares_its_values():
    undeclared = [f"{name}.{param}" for name, c in _configurables() for param, p in _parameters(c).items()
                  if param not in limits.declared(c.wrapped) and param not in FREE and not _boolean(p)]
    assert not undeclared, f"declare their values with tfaudio.limits: {undeclared}"


@pytest.mark.parametrize("name,param,limit", CASES, ids=[f"{n}.{p}" for n, p, _ in CASES])
def test_each_default_is_allowed(name, param, limit):
    config.parse([], [])
    configurable = config._configurable(name)
    default = _parameters(configurable)[param].default
    assert default is inspect.Parameter.empty or default is gin.REQUIRED or limit.allows(default), default


def test_every_declared_rejection_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys):
    swept = 0
    for name, param, limit in CASES:
        gin_file = "openunmix_8khz.gin" if limit_bound(limit) else "audio_unet.gin"
        config.parse([gin_file], finalize=False)
        for value in limit.rejected():
            code, run_exists = wrong(tmp_path, gin_file, f"{name}.{param} = {value!r}")
            err = capsys.readouterr().err
            lines = [line for line in err.splitlines() if line.startswith("config error:")]
            assert code == 2 and len(lines) == 1 and f"{name}.{param} = " in lines[0], (name, param, value, err)
            assert "must be" in lines[0] and "Traceback" not in err and not run_exists
            swept += 1
    assert swept >= len(CASES)


def limit_bound(limit) -> bool:
    """Whether the limit depends on another binding (swept at 8 kHz, where it bites)."""
    return any(isinstance(b, limits.Bound) for b in (getattr(limit, "low", None), getattr(limit, "high", None)))


def test_a_limit_taken_from_another_binding_follows_it():
    config.parse([], ["audio_geometry.sample_rate = 8000"], finalize=False)
    nyquist = limits.Range(0, limits.NYQUIST)
    assert nyquist.allows(4000) and not nyquist.allows(4000.5)
    config.parse([], ["audio_geometry.sample_rate = 44100"], finalize=False)
    assert nyquist.allows(16000) and nyquist.rejected() == [-0.5, 22050.5]


def test_ranges_choices_and_sequences_reject_what_they_say():
    count = limits.Range(1, integer=True)
    assert count.allows(1) and not count.allows(0) and not count.allows(1.5) and not count.allows(True)
    assert not limits.Range(0, 1, high_open=True).allows(1.0) and limits.UNIT.allows(1.0)
    assert not limits.POSITIVE.allows(float("nan")) and not limits.POSITIVE.allows(None)
    assert limits.POSITIVE.or_none().allows(None) and not limits.POSITIVE.allows(None)
    assert limits.Choice(1, 2).allows(2) and not limits.Choice(1, 2).allows(2.0)
    assert limits.Each(count).allows((1, 2)) and not limits.Each(count).allows((1, 0)) \
        and not limits.Each(count).allows(())
    assert [limits.power_of_two(n) for n in (1, 2, 3, 64, 0)] == [True, True, False, True, False]


def test_a_python_caller_meets_the_same_declaration():
    from tfaudio.models.openunmix import OpenUnmix
    with pytest.raises(ConfigError, match=r"OpenUnmix.hidden_size = 7: must be a positive even integer"):
        OpenUnmix(hidden_size=7)
