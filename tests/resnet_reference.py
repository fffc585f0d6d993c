"""The reference tests/data/torchvision_resnet.json is made from torchvision's own ResNet: its classes, read out of
torchvision 0.28.0's wheel and run with torch alone (torchvision cannot be imported beside a CPU torch 2.13, see
rnnlab/models/resnet.py). For resnet18, resnet34 and resnet50 it keeps every state-dict key and its shape, and for
resnet18 and resnet50, with the weights of `fixed_weights`, layer4's feature map of `fixed_images`. Remade with

    pip download torchvision==0.28.0 --no-deps -d /tmp/tv
    OMP_NUM_THREADS=1 PYTHONPATH=src python tests/resnet_reference.py /tmp/tv/torchvision-0.28.0-*.whl

The tests import `fixed_weights` and `fixed_images` from here, so both sides see the same numbers.
"""

from __future__ import annotations

import json
import math
import re
import sys
import zipfile
from pathlib import Path

import torch

REFERENCE = Path(__file__).parent / "data" / "torchvision_resnet.json"
ARCHITECTURES = {"resnet18": ("BasicBlock", [2, 2, 2, 2]), "resnet34": ("BasicBlock", [3, 4, 6, 3]),
                 "resnet50": ("Bottleneck", [3, 4, 6, 3])}
FEATURES_OF = ("resnet18", "resnet50")
IMAGE_SIZE = 64  # layer4: a 2 × 2 grid
KEPT_CHANNELS = 16  # of each grid cell's features, the first ones are kept whole; the rest as sums


def fixed_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A state dict from a formula, not a random stream: the same on any machine and torch version. Convolution
    weights at torchvision's scale (1/√fan_in), batch norm near identity, running variances positive."""
    weights = {}
    for k, (name, shape) in enumerate(shapes.items()):
        if name.endswith("num_batches_tracked"):
            weights[name] = torch.tensor(0)
            continue
        wave = torch.sin(torch.arange(math.prod(shape), dtype=torch.float64) * 0.61 + k).view(shape)
        if name.endswith("running_var"):
            value = 1 + 0.5 * wave**2
        elif name.endswith(("running_mean", "bias")):
            value = 0.1 * wave
        elif len(shape) == 1:  # a batch norm's scale
            value = 1 + 0.1 * wave
        else:
            value = wave * math.sqrt(2 / math.prod(shape[1:]))
        weights[name] = value.float()
    return weights


def fixed_images(count: int = 2) -> torch.Tensor:
    """(count, 3, 64, 64), about as varied as normalised pixels, each image a wave of its own frequency."""
    pixels = torch.arange(3 * IMAGE_SIZE**2, dtype=torch.float64)
    waves = [2 * torch.sin(pixels * 0.013 * (1 + k)).view(3, IMAGE_SIZE, IMAGE_SIZE) for k in range(count)]
    return torch.stack(waves).float()


def summary(features: torch.Tensor) -> dict[str, list]:
    """layer4's map (B, C, h, w) as kept in the reference: the first channels whole, and per image and cell the sum
    and the sum of squares over all channels."""
    return {"shape": list(features.shape), "first_channels": features[:, :KEPT_CHANNELS].tolist(),
            "sum": features.sum(dim=1).tolist(), "sum_of_squares": (features**2).sum(dim=1).tolist()}


def torchvision_resnet_module(wheel: Path) -> dict:
    """torchvision/models/resnet.py's classes, executed without torchvision: its relative imports dropped, the one
    helper the classes call (_log_api_usage_once) a no-op; everything from `def _resnet` on (weights enums,
    builders) left out."""
    source = zipfile.ZipFile(wheel).read("torchvision/models/resnet.py").decode()
    source = source[:source.index("\ndef _resnet(")]
    source = re.sub(r"^from \.\..*?$|^from \._.*?$|^from \.\w+ import .*?$", "", source, flags=re.MULTILINE)
    namespace = {"__name__": "torchvision_resnet", "_log_api_usage_once": lambda module: None}
    exec(compile(source, "torchvision/models/resnet.py", "exec"), namespace)
    return namespace


def layer4(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet._forward_impl up to its avgpool."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def main(wheel: Path) -> None:
    torchvision = torchvision_resnet_module(wheel)
    reference: dict = {"source": f"torchvision 0.28.0 ({wheel.name}): torchvision/models/resnet.py",
                       "state_dict": {}, "layer4": {}}
    for name, (block, layers) in ARCHITECTURES.items():
        model = torchvision["ResNet"](torchvision[block], layers).eval()
        shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
        reference["state_dict"][name] = {key: list(shape) for key, shape in shapes.items()}
        if name in FEATURES_OF:
            model.load_state_dict(fixed_weights(shapes))
            with torch.no_grad():
                reference["layer4"][name] = summary(layer4(model, fixed_images()))
    REFERENCE.write_text(json.dumps(reference, indent=None) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
