"""What the root scripts share: a user's mistake is one line on stderr and exit status 2, never a traceback, and a
device that is not there is such a mistake."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def read_lines(text: str | None, input: str | None, example: str) -> list[str]:
    """The texts a prediction script works on: text=, else the lines of the file input=, else of stdin."""
    if text is not None:
        if input is not None:
            raise ConfigError("text= and input= are both given; give one (or neither, to read stdin)")
        if not str(text).strip():
            raise ConfigError(f"text is empty: give a sentence, e.g. text=\"{example}\"")
        return [str(text)]
    if input is not None:
        path = Path(str(input)).expanduser()
        if not path.is_file():
            raise ConfigError(f"input={input}: no such file; give a text file with one sentence per line")
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ConfigError(f"input={input} is not UTF-8 text; convert it, e.g. iconv -t utf-8") from None
    return sys.stdin.read().splitlines()
