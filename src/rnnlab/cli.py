"""What the root scripts share: a user's mistake is one line on stderr and exit status 2, never a traceback, and a
device that is not there is such a mistake; the prediction scripts (translate.py, classify.py, tag.py, caption.py)
also read their inputs and load their checkpoint's task alike."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    """The texts a prediction script works on: text=, else the lines of the file input=, else (input= null or -)
    of stdin."""
    if input is not None and str(input) == "-":
        input = None
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


def prediction_texts(cfg: Any, example: str) -> list[str]:
    """A prediction script's texts (text=, input= or stdin), once its ckpt= is given and device= and batch_size= are
    checked."""
    from rnnlab.checkpoints import require_ckpt

    require_ckpt(cfg.ckpt)  # before stdin is read, which would wait for input first
    texts = read_lines(cfg.text, cfg.input, example)
    check_prediction_settings(cfg)
    return texts


def prediction_images(cfg: Any) -> list[Path]:
    """caption.py's image files: image=, or input= a folder (its image files, sorted) or a file listing their paths one
    per line; once device= and batch_size= are checked."""
    if (cfg.image is None) == (cfg.input is None):
        raise ConfigError("give image=<an image file> or input=<a folder of images, or a file of their paths>"
                          + (", not both" if cfg.image is not None else ""))
    given = Path(str(cfg.image if cfg.image is not None else cfg.input)).expanduser()
    if cfg.image is not None and not given.is_file():
        raise ConfigError(f"image={cfg.image}: no such file")
    if cfg.image is not None or given.is_file() and given.suffix.lower() in IMAGE_SUFFIXES:
        paths = [given]
    elif given.is_dir():
        paths = sorted(path for path in given.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ConfigError(f"input={cfg.input} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
    elif given.is_file():
        paths = [Path(line.strip()).expanduser() for line in given.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    else:
        raise ConfigError(f"input={cfg.input}: no such folder or file")
    check_prediction_settings(cfg)
    return paths


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def check_prediction_settings(cfg: Any) -> None:
    """device= and batch_size= of a prediction script."""
    check_device(cfg.device)
    if not isinstance(cfg.batch_size, int) or isinstance(cfg.batch_size, bool) or cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is invalid: must be a positive integer")


def load_task(task_class: Any, cfg: Any, **settings: Any) -> Any:
    """The task of cfg.ckpt (a .ckpt file, or an MLflow run id whose best checkpoint is downloaded), in eval mode
    on cfg.device; settings not None override its task keys."""
    from rnnlab import allocator
    from rnnlab.checkpoints import resolve_checkpoint

    allocator.configure_from(cfg)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars around the output
    with tempfile.TemporaryDirectory() as download_dir:
        path = resolve_checkpoint(cfg.ckpt, cfg.tracking_uri, download_dir)
        return task_class.from_checkpoint(path, str(cfg.ckpt), cfg.device, **settings)
