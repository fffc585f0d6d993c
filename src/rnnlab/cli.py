"""What the root scripts share: a user's mistake is one line on stderr and exit status 2, never a traceback, and a
device that is not there is such a mistake."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rnnlab.errors import ConfigError


@contextmanager
def one_line_errors(status: int = 2) -> Iterator[None]:
    """A ConfigError inside the block: print `error: <message>` and exit with `status`."""
    try:
        yield
    except ConfigError as error:
        fail(error, status)


def fail(error: Exception, status: int) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(status)


def check_device(device: str) -> None:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA device is visible; use device=cpu")
