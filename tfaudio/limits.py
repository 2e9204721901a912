"""The valid values of configurable parameters, declared beside their definition.

    @gin.configurable
    @limits(n_mels=Range(1, integer=True), fmax=Range(0, NYQUIST, low_open=True, none=True))
    def audio_geometry(...): ...

A declaration is checked twice from one statement: by tfaudio.config when gin parses
a binding (with its file and line, before a run writes anything) and whenever the
configurable is called (Python callers and defaults too). A violation is one
ConfigError line naming the binding, the value and what is allowed. Limits may
refer to other bindings (`Bound`, e.g. Nyquist), read from the parsed gin config.
Each limit also names values it rejects, which the tests bind one by one.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import numbers

import gin

from tfaudio.errors import ConfigError

LIMITS = "__limits__"  # the attribute holding a configurable's {parameter: Limit}


def resolve_macros(value):
    """Follows `%macro` references to their bound value (other references stay)."""
    seen = set()
    while (isinstance(value, gin.config.ConfigurableReference)
           and value.configurable.wrapped is gin.config.macro and value.scoped_selector not in seen):
        seen.add(value.scoped_selector)
        value = gin.query_parameter(f"{value.scoped_selector}.value")
    return value


def bound_value(binding: str):
    """The value gin binds to `binding` ("audio_geometry.sample_rate"), macros followed,
    or the parameter's default when nothing binds it."""
    try:
        return resolve_macros(gin.query_parameter(binding))
    except ValueError:
        selector, name = binding.rsplit(".", 1)
        fn = gin.config._REGISTRY.get_match(selector).wrapped
        return inspect.signature(fn.__init__ if inspect.isclass(fn) else fn).parameters[name].default


class Bound:
    """A limit taken from another binding times `factor`, e.g. Nyquist."""

    def __init__(self, binding: str, factor: float = 1.0, name: str = ""):
        self.binding, self.factor, self.name = binding, factor, name

    def value(self) -> float:
        return bound_value(self.binding) * self.factor

    def describe(self) -> str:
        scaled = self.binding if self.factor == 1 else f"{self.binding} x {self.factor:g}"
        return f"{self.name} ({scaled} = {self.value():g})" if self.name else f"{scaled} = {self.value():g}"


NYQUIST = Bound("audio_geometry.sample_rate", 0.5, "Nyquist")


def _number(bound) -> float | None:
    return bound.value() if isinstance(bound, Bound) else bound


def _text(bound) -> str:
    return bound.describe() if isinstance(bound, Bound) else f"{bound:g}"


class Limit:
    """What values a parameter takes: `allows(value)`, `describe()` and `rejected()`
    (values the tests bind to see them refused). `none`: None is also allowed."""

    none = False

    def allows(self, value) -> bool:
        return (value is None and self.none) or (value is not None and self.test(value))

    def describe(self) -> str:
        return self.text() + (" (or None)" if self.none else "")

    def rejected(self) -> list:
        return self.invalid()

    def or_none(self) -> Limit:
        """This limit, with None allowed too."""
        other = copy.copy(self)
        other.none = True
        return other


class Range(Limit):
    """A number between `low` and `high` (numbers or Bounds; None: unbounded), ends
    included unless open; `integer` asks for a whole number."""

    def __init__(self, low=None, high=None, *, integer: bool = False, low_open: bool = False,
                 high_open: bool = False, none: bool = False):
        self.low, self.high, self.integer = low, high, integer
        self.low_open, self.high_open, self.none = low_open, high_open, none

    def test(self, value) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return False
        low, high = _number(self.low), _number(self.high)
        above = low is None or (value > low if self.low_open else value >= low)
        below = high is None or (value < high if self.high_open else value <= high)
        return above and below

    def text(self) -> str:
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_text(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_text(self.high)}")
        return f"{kind} {' and '.join(parts)}".strip()

    def invalid(self) -> list:
        step = 1 if self.integer else 0.5
        out = []
        low, high = _number(self.low), _number(self.high)
        if low is not None:
            out.append(low if self.low_open else low - step)
        if high is not None:
            out.append(high if self.high_open else high + step)
        return [int(v) if self.integer else float(v) for v in out]


class Choice(Limit):
    """One of the listed values."""

    def __init__(self, *choices, none: bool = False):
        self.choices, self.none = choices, none

    def test(self, value) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)

    def text(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def invalid(self) -> list:
        return ["no_such_choice" if isinstance(self.choices[0], str) else max(self.choices) + 1]


class Each(Limit):
    """A list or tuple of `min_length` or more items, each allowed by `item`."""

    def __init__(self, item: Limit, min_length: int = 1, none: bool = False):
        self.item, self.min_length, self.none = item, min_length, none

    def test(self, value) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) >= self.min_length
                and all(self.item.allows(v) for v in value))

    def text(self) -> str:
        return f"a tuple of {self.min_length} or more items, each {self.item.describe()}"

    def invalid(self) -> list:
        return [tuple([v] * max(1, self.min_length)) for v in self.item.rejected()]


class Rule(Limit):
    """Any other rule: `test(value)` with its wording and values it rejects."""

    def __init__(self, test, text: str, invalid: list, none: bool = False):
        self._test, self._text, self._invalid, self.none = test, text, invalid, none

    def test(self, value) -> bool:
        try:
            return bool(self._test(value))
        except (TypeError, ValueError, IndexError):
            return False

    def text(self) -> str:
        return self._text

    def invalid(self) -> list:
        return list(self._invalid)


def _phases(schedule) -> bool:
    return all(len(p) == 2 and int(p[0]) == p[0] >= 0 and int(p[1]) == p[1] >= 1 for p in schedule)


def phases(value: str) -> Rule:
    """A schedule ((update step >= 0, `value` >= 1), ...): from each step on, that value."""
    return Rule(_phases, f"((update step >= 0, {value} >= 1), ...)", [((0, 32), (600,)), ((0, 0),)])


POSITIVE_INT = Range(1, integer=True)
COUNT = Range(0, integer=True)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)
RATE = Range(0, 1, high_open=True)  # dropout, smoothing: 1 would leave nothing
PROPORTION = Range(0, 1, low_open=True)  # a share that must keep something


def _metric_name(value) -> bool:
    return isinstance(value, str) and value.count("/") >= 1 and all(value.split("/", 1))


METRIC = Rule(_metric_name, "a metric named '<split>/<metric>', e.g. 'val/loss'", ["loss"])
MODE = Choice("min", "max")


def power_of_two(value) -> bool:
    return isinstance(value, numbers.Integral) and value >= 1 and value & (value - 1) == 0


def violation(owner: str, name: str, value, limit: Limit) -> str | None:
    """The ConfigError text when `value` breaks `limit`, else None."""
    if limit.allows(value):
        return None
    return f"{owner}.{name} = {value!r}: must be {limit.describe()}"


def declared(fn) -> dict:
    """{parameter: Limit} declared on a configurable (class or function); a subclass
    keeps its bases' declarations of the parameters it still takes."""
    params = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn).parameters
    return {name: limit for name, limit in getattr(fn, LIMITS, {}).items() if name in params}


def limits(**declarations):
    """Declares the valid values of a function's or class's parameters; they are checked
    at every call, and by tfaudio.config at parse time."""

    def decorate(target):
        fn = target.__init__ if inspect.isclass(target) else target
        signature = inspect.signature(fn)
        unknown = set(declarations) - set(signature.parameters)
        if unknown:
            raise TypeError(f"limits on {target.__name__}: no parameters {sorted(unknown)}")
        owner = target.__name__

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, limit in declarations.items():
                value = bound.arguments[name]
                if value is gin.REQUIRED:
                    continue
                problem = violation(owner, name, value, limit)
                if problem:
                    raise ConfigError(problem)
            return fn(*args, **kwargs)

        checked.__signature__ = signature  # Keras reads the argspec of __init__
        if inspect.isclass(target):
            target.__init__ = checked
        else:
            target = checked
        setattr(target, LIMITS, {**getattr(target, LIMITS, {}), **declarations})
        return target

    return decorate
