"""The exception types entry scripts answer with one line instead of a stack trace, and a check for options."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


class ConfigError(ValueError):
    """A bad option or value. Its message is one line naming the key, the value and the fix.

    Entry scripts print it without a stack trace and exit with status 2.
    """


@contextmanager
def group_keys(group: str) -> Iterator[None]:
    """Inside, a ValueError of a layer naming its argument ("hidden_size=0 is invalid: ...") becomes a one-line
    ConfigError naming the `group`.* key of that name (model.hidden_size): the networks pass a config group's keys
    to their layers by name."""
    try:
        yield
    except ValueError as error:
        raise ConfigError(f"{group}.{error}") from None


class TrainingStopped(RuntimeError):
    """Training cannot go on (a non-finite loss, a checkpoint that cannot be written). Its message is one
    line: what happened, what was kept, what to do. train.py prints it and exits with status 1."""


def check_options(target: Callable, options: Iterable[str], group: str, ignore: Iterable[str] = ()) -> None:
    """Raise ConfigError if `options` holds a key that `target` does not accept.

    Hydra lets users add keys with `+group.key=value`; without this they surface as a TypeError
    stack trace from deep inside training.
    """
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name not in ("self", *ignore)]
    for key in options:
        if key not in valid and not key.startswith("_"):
            raise ConfigError(f"{group}.{key} is not an option here; valid: {', '.join(valid)}")


def check_integer(key: str, value: Any, least: int = 1, optional: bool = False) -> None:
    """A one-line ConfigError unless `value` is an integer ≥ least (or, if optional, None), e.g. `data.batch_size=0 is
    invalid: must be a positive integer`."""
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        wanted = "a positive integer" if least == 1 else f"an integer ≥ {least}"
        raise ConfigError(f"{key}={value!r} is invalid: must be {wanted}" + (" or null" if optional else ""))


def refuse_unknown_data_options(data: Any, base: type, unknown: dict) -> None:
    """A data module that passes its base's options through **options: a key neither the module nor its base takes
    is a one-line ConfigError listing both's keys (data.<key> is not an option of data=<option>; valid: ...)."""
    if not unknown:
        return
    valid = [name for cls in (type(data), base) for name, p in inspect.signature(cls.__init__).parameters.items()
             if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    raise ConfigError(f"data.{sorted(unknown)[0]} is not an option of data={data.option}; "
                      f"valid: {', '.join(dict.fromkeys(valid))}")
