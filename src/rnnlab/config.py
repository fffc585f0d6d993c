"""Config helpers shared by entry scripts and tests: resolvers and checks Hydra cannot express."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import ConfigError, check_options


def project_root() -> Path:
    """The repository (where conf/ and logs/ live) for an editable install, else the working dir."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "conf").is_dir() else Path.cwd()


if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(project_root()))


def check(cfg: DictConfig) -> None:
    """Raise ConfigError for values that only fail late, or with an unhelpful message, downstream."""
    lr = cfg.optimizer.get("lr")
    if lr is None or not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"optimizer.lr={lr} is invalid: must be a positive number")
    # build it once on a dummy parameter: unknown keys and invalid values fail now, not mid-fit
    optimizer_class = get_class(cfg.optimizer._target_)
    check_options(optimizer_class, [k for k in cfg.optimizer if k != "_target_"], "optimizer", ignore=("params",))
    try:
        instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    except Exception as error:  # torch's message, e.g. "Invalid beta parameter at index 0: 1.5"
        raise ConfigError(f"optimizer={optimizer_class.__name__} rejects its settings: "
                          f"{error.__cause__ or error}") from None
    trainer = cfg.trainer
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=gpu but no CUDA device is visible "
                          "(torch.cuda.is_available() is False): use hardware=cpu or hardware=ddp_cpu")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps but MPS is not available here: use hardware=cpu")
    for key in ("max_epochs", "max_steps"):
        value = trainer.get(key)
        if value is not None and value != -1 and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"trainer.{key}={value} is invalid: must be a positive integer (or -1)")
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (not isinstance(clip, (int, float)) or clip < 0):
        raise ConfigError(f"trainer.gradient_clip_val={clip} is invalid: must be ≥ 0 (0 or null disables)")
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={algorithm} is invalid: norm (rescale the global "
                          "gradient norm to at most gradient_clip_val) or value (clamp each entry)")
