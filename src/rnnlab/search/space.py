"""A search space written in Hydra's sweep grammar, as Optuna distributions.

Each entry of `hydra.sweeper.params` (nested like the config, `optimizer: {lr: ...}`, or with dotted keys,
`optimizer.lr: ...`), and each sweep on the command line (`'optimizer.lr=interval(1e-4, 1e-2)'`), is

    choice(a, b, c)   or   a,b,c           categorical
    range(start, stop[, step])             start, start + step, … < stop (integers or floats, ordered)
    interval(low, high)                    a float, uniform on [low, high]
    tag(log, interval(low, high))          a float, log-uniform
    tag(int, interval(low, high))          an integer, uniform; tag(int, log, interval(…)): log-uniform
    anything else                          a fixed value, the same in every trial

A command-line entry replaces a `params` entry of the same key; command-line overrides that are not
sweeps are passed unchanged to every trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from rnnlab.errors import ConfigError
from rnnlab.tracking.run_info import flatten

SYNTAX = ("choice(a,b,...), range(start,stop[,step]), interval(low,high), tag(log, interval(low,high)) "
          "or tag(int, interval(low,high))")


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution]  # override key (e.g. optimizer.lr, attention) → what to sample
    fixed: list[str]                            # overrides given to every trial as they are

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's Hydra overrides, from its sampled values (as Optuna names them: by override key)."""
        sampled = [f"{key}={Override._get_value_element_as_str(value)}" for key, value in params.items()]
        return [*self.fixed, *sampled]

    def grid(self) -> dict[str, list[Any]]:
        """Every value of each parameter, for a grid search: the space must be discrete."""
        grid = {}
        for key, d in self.distributions.items():
            if isinstance(d, CategoricalDistribution):
                grid[key] = list(d.choices)
            elif d.step is not None:  # range(...), or tag(int, interval(...)) (step 1)
                grid[key] = [d.low + i * d.step for i in range(round((d.high - d.low) / d.step) + 1)]
            else:
                raise ConfigError(f"{key}: a grid (hydra/sweeper/sampler=grid) needs discrete values: choice(...), "
                                  f"range(...) or tag(int, interval(...)), not a continuous interval")
        return grid

    def probe(self) -> dict[str, Any]:
        """One point of the space (each choice's first value, each range's low end), to check it composes."""
        return {key: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low
                for key, d in self.distributions.items()}


def parse_space(params: dict[str, Any], arguments: list[str]) -> SearchSpace:
    """params: hydra.sweeper.params; arguments: the command line's overrides of the job config."""
    parser = OverridesParser.create()
    named = {}  # override key → (Override, where it came from), the command line last so that it wins
    for line, origin in [*((f"{k}={v}", f"hydra.sweeper.params.{k}") for k, v in flatten(params).items()),
                         *((line, line) for line in arguments)]:
        try:
            override = parser.parse_override(line)
        except HydraException as error:
            raise ConfigError(f"{origin}: cannot read {line!r} ({error}); a search space is {SYNTAX}") from None
        named[override.get_key_element()] = (override, origin)

    distributions, fixed = {}, []
    for key, (override, origin) in named.items():
        if override.is_sweep_override():
            distributions[key] = _distribution(override, origin)
        else:
            fixed.append(override.input_line)
    if not distributions:
        raise ConfigError(f"the search space is empty: set hydra.sweeper.params (e.g. with hparams_search=lm_lstm) "
                          f"or sweep a key on the command line, as {SYNTAX}")
    return SearchSpace(distributions, fixed)


def _distribution(override: Override, origin: str) -> BaseDistribution:
    sweep = override.value()
    try:
        if isinstance(sweep, ChoiceSweep) and not sweep.shuffle:
            return CategoricalDistribution(sweep.list)
        if isinstance(sweep, RangeSweep) and not sweep.shuffle:
            values = list(override.sweep_iterator())
            if not values:
                raise ValueError("the range is empty")
            if all(isinstance(v, int) for v in values):
                return IntDistribution(values[0], values[-1], step=sweep.step)
            return FloatDistribution(values[0], values[-1], step=sweep.step)
        if isinstance(sweep, IntervalSweep) and sweep.tags <= {"log", "int"}:
            log = "log" in sweep.tags
            if "int" in sweep.tags:
                if not (sweep.start.is_integer() and sweep.end.is_integer()):
                    raise ValueError("tag(int, ...) needs integer bounds")
                return IntDistribution(int(sweep.start), int(sweep.end), log=log)
            return FloatDistribution(sweep.start, sweep.end, log=log)
    except ValueError as error:  # Optuna's or ours: bounds in the wrong order, log of a value ≤ 0, unhashable choice
        raise ConfigError(f"{origin}: {error}") from None
    raise ConfigError(f"{origin}: {override.input_line!r} is not a search space Optuna can sample; use {SYNTAX}")
