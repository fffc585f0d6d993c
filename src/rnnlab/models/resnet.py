"""ResNet-18, -34 and -50 (He et al. 2016) as captioning's image encoder (`model.encoder=resnet18|resnet34|resnet50`),
and the loading of a torchvision weights file into one (`model.encoder_weights`).

Written here rather than imported from torchvision: the only torchvision build for torch 2.13 (0.28.0) is a CUDA
build, whose compiled ops cannot be loaded beside rnnlab's CPU-only torch (`import torchvision` fails: operator
torchvision::nms does not exist). The modules carry torchvision's names, so its state dicts load as they are
(resnet18-f37072fd.pth, resnet34-b627a593.pth, resnet50-0676ba61.pth: the IMAGENET1K_V1 weights); the names, the
shapes and layer4's output are tested equal to torchvision's own classes (tests/resnet_reference.py).

    stem        conv1 7×7 stride 2 → bn1 → relu → maxpool 3×3 stride 2          S → ⌈S/4⌉, 64 channels
    layer1..4   blocks of width 64, 128, 256, 512; the first block of layers 2–4 has stride 2   → ⌈S/32⌉
    BasicBlock  y = relu(bn2(conv2₃ₓ₃(relu(bn1(conv1₃ₓ₃/s(x))))) + shortcut(x))                   resnet18, 34
    Bottleneck  y = relu(bn3(conv3₁ₓ₁(relu(bn2(conv2₃ₓ₃/s(relu(bn1(conv1₁ₓ₁(x)))))))) + shortcut(x))  resnet50:
                4 × wider out than in, the stride on the 3×3 conv (torchvision's "v1.5"; the paper's is on conv1)
    shortcut    x, or downsample(x) = BN(conv 1×1 stride s (x)) where the block changes the width or the size

The regions are layer4's map, read row by row: (B, R, C) with R = ⌈S/32⌉² (7 × 7 for 224-pixel images) and
C = 512 (resnet18, 34) or 2048 (resnet50). The classifier (avgpool, fc) is left out: captioning reads the grid.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rnnlab.errors import ConfigError

WIDTHS = (64, 128, 256, 512)  # of layer1..layer4 (a Bottleneck's output is 4 × as wide)


def conv3x3(inputs: int, outputs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)


def conv1x1(inputs: int, outputs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False)


def shortcut(inputs: int, outputs: int, stride: int) -> nn.Sequential | None:
    """downsample: conv 1×1 → BN where the block changes the width or the size, else None (the identity)."""
    if stride == 1 and inputs == outputs:
        return None
    return nn.Sequential(conv1x1(inputs, outputs, stride), nn.BatchNorm2d(outputs))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(inputs, width, stride), nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(width, width), nn.BatchNorm2d(width)
        self.downsample = shortcut(inputs, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = conv1x1(inputs, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, width * self.expansion), nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(inputs, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


ARCHITECTURES: dict[str, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """images (B, 3, S, S), normalised as ImageNet's were → layer4's regions (B, R, C); see the module docstring."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inputs = 64
        for number, (width, blocks) in enumerate(zip(WIDTHS, layers), start=1):
            stride = 1 if number == 1 else 2
            stage = []
            for k in range(blocks):
                stage.append(block(inputs, width, stride if k == 0 else 1))
                inputs = width * block.expansion
            setattr(self, f"layer{number}", nn.Sequential(*stage))
        self.channels = inputs  # C
        for module in self.modules():  # torchvision's initialisation, for an encoder trained from scratch
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def grid_side(image_size: int) -> int:
        """h = w of layer4's map: conv1, maxpool and the three strided layers each halve, rounding up."""
        side = image_size
        for _ in range(5):
            side = (side + 1) // 2
        return side

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        features = self.layer4(self.layer3(self.layer2(self.layer1(features))))  # (B, C, h, w)
        return features.flatten(2).transpose(1, 2)  # (B, R, C), row by row


def resnet(name: str) -> ResNet:
    block, layers = ARCHITECTURES[name]
    return ResNet(block, layers)


def channels(name: str) -> int:
    """C of resnet `name`, without building it."""
    block, _ = ARCHITECTURES[name]
    return WIDTHS[-1] * block.expansion


# --- a torchvision weights file ------------------------------------------------------------------------------------
def load_weights(trunk: ResNet, encoder: str, path: str | Path) -> None:
    """Load a torchvision weights file of resnet `encoder` into trunk: a state dict (torchvision's files), or a dict
    holding one under "state_dict" or "model". fc.* (the ImageNet classifier) is left out; every other key must be
    there, with its shape. Anything else is a one-line ConfigError naming the fix."""
    key = f"model.encoder_weights={path}"
    weights = {name: value for name, value in read_state_dict(Path(path).expanduser(), key).items()
               if not name.startswith("fc.")}
    expected = trunk.state_dict()
    missing = sorted(set(expected) - set(weights) - set(filter(_is_step_counter, expected)))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"{key} does not fit model.encoder={encoder}: {_listed('missing', missing)}"
                          f"{'; ' if missing and unexpected else ''}{_listed('unexpected', unexpected)}; "
                          f"{_looks_like(weights, encoder)}")
    wrong = [name for name in weights if weights[name].shape != expected[name].shape]
    if wrong:
        raise ConfigError(f"{key} has {len(wrong)} tensors of other shapes than model.encoder={encoder}'s, e.g. "
                          f"{wrong[0]} {_shape(weights[wrong[0]])} where {encoder} has {_shape(expected[wrong[0]])}: "
                          f"give the weights of a torchvision {encoder} itself (a wide ResNet or a ResNeXt has the "
                          f"same names, other shapes)")
    # a file without batch norm's step counters (saved before torch 0.4.1) keeps the trunk's own
    trunk.load_state_dict({**{name: expected[name] for name in filter(_is_step_counter, expected)}, **weights})


def _is_step_counter(name: str) -> bool:
    """num_batches_tracked: batch norm's count of training steps, read only with momentum=None."""
    return name.endswith("num_batches_tracked")


def read_state_dict(path: Path, key: str) -> dict[str, torch.Tensor]:
    """The state dict of a weights file, read with weights_only (no code in the file runs)."""
    if not path.is_file():
        raise ConfigError(f"{key}: no such file; give the path of a torchvision weights file (e.g. "
                          f"resnet18-f37072fd.pth), or model.encoder_weights=null to train the encoder from scratch")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a file that is not torch.save's fails in many ways: KeyError, EOFError, ...
        raise ConfigError(f"{key} is not a weights file torch.load(weights_only=True) reads ({_load_failure(error)}); "
                          f"give a torchvision .pth state dict") from None
    if isinstance(loaded, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), dict):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict) or not loaded:
        what = "an empty dict" if isinstance(loaded, dict) else f"a {type(loaded).__name__}"
        raise ConfigError(f"{key} holds {what}, not a dict of tensors (a state dict): give a torchvision .pth state "
                          f"dict")
    odd = next((name for name, value in loaded.items()
                if not isinstance(name, str) or not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise ConfigError(f"{key} is not a state dict (names → tensors): it holds {odd!r} → "
                          f"{type(loaded[odd]).__name__}; give a torchvision .pth state dict")
    return loaded


def _load_failure(error: Exception) -> str:
    """torch.load's error in a few words: its weights_only refusal is a page, whose one line that matters follows
    "WeightsUnpickler error:"."""
    text = str(error)
    if "WeightsUnpickler error:" not in text:
        return f"{type(error).__name__}: {(text.splitlines() or [''])[0][:100]}"
    detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
    if detail.startswith("Unsupported global"):  # "Unsupported global: GLOBAL fractions.Fraction was not ..."
        return f"it holds Python objects ({detail.split()[3]}), not only tensors, and weights_only refuses them"
    return f"weights_only: {detail[:100]}"


def _listed(what: str, keys: list[str], most: int = 3) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return f"{len(keys)} {what} ({', '.join(keys[:most])}{more})"


def _looks_like(weights: dict[str, torch.Tensor], encoder: str) -> str:
    """Which encoder the file's names are of, as the fix to suggest."""
    names = {name for name in weights if not _is_step_counter(name)}
    for other in ARCHITECTURES:
        with torch.device("meta"):  # names only: nothing allocated
            others = {name for name in resnet(other).state_dict() if not _is_step_counter(name)}
        if other != encoder and others == names:
            return f"looks like {other} weights: set model.encoder={other}"
    return f"not the state dict of a torchvision {', '.join(ARCHITECTURES)}: give one, and name it in model.encoder"


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "a scalar"
