"""model.encoder=resnet18|resnet34|resnet50 and model.encoder_weights: the hand-written ResNets against torchvision's
own (names, shapes, layer4's output), a torchvision weights file loaded into the captioner and each way it can be
wrong, freezing, restoring a checkpoint without the file, and one tiny train.py run.

The reference, tests/data/torchvision_resnet.json, was made by tests/resnet_reference.py from torchvision 0.28.0's
wheel: its torchvision/models/resnet.py classes executed with torch alone (torchvision itself cannot be imported
beside a CPU torch 2.13), ResNet(BasicBlock, [2, 2, 2, 2]) etc. built, their state-dict names and shapes written
out, and for resnet18 and resnet50 layer4's map of `fixed_images` under `fixed_weights` (both defined there).
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch
from resnet_reference import KEPT_CHANNELS, REFERENCE, fixed_images, fixed_weights

from rnnlab.data.synthetic_scenes import SyntheticScenesDataModule
from rnnlab.errors import ConfigError
from rnnlab.models import registry, resnet
from rnnlab.tasks.captioning import CaptioningTask
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TORCHVISION = json.loads(REFERENCE.read_text())
INPUTS = dict(vocab_size=12, pad_id=0, bos_id=1, eos_id=2, image_size=64)
DECODER = {"cell": "gru", "embedding_size": 8, "hidden_size": 16, "num_layers": 1}


def torchvision_like_weights(encoder: str = "resnet18") -> dict[str, torch.Tensor]:
    """A random state dict under torchvision's names, its ImageNet classifier (fc) included."""
    torch.manual_seed(1)
    weights = {name: torch.randn(value.shape) if value.is_floating_point() else torch.tensor(7)
               for name, value in resnet.resnet(encoder).state_dict().items()}
    weights = {name: value.abs() + 0.5 if name.endswith("running_var") else value for name, value in weights.items()}
    return {**weights, "fc.weight": torch.randn(1000, resnet.channels(encoder)), "fc.bias": torch.randn(1000)}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    weights = torchvision_like_weights()
    torch.save(weights, path)
    return path, weights


def captioner(**model):
    return registry.build({**DECODER, "encoder": "resnet18", **model}, "captioner", **INPUTS)


# --- the architecture ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50"])
def test_resnet_names_and_shapes_are_torchvisions_but_its_classifier(encoder):
    with torch.device("meta"):
        ours = {name: list(value.shape) for name, value in resnet.resnet(encoder).state_dict().items()}
    theirs = TORCHVISION["state_dict"][encoder]
    assert ours == {name: shape for name, shape in theirs.items() if not name.startswith("fc.")}
    assert list(ours) == [name for name in theirs if not name.startswith("fc.")]  # the same order, too
    assert resnet.channels(encoder) == theirs["fc.weight"][1]


@pytest.mark.parametrize("encoder", ["resnet18", "resnet50"])
def test_resnet_regions_are_torchvisions_layer4_read_row_by_row(encoder):
    trunk = resnet.resnet(encoder).eval()
    trunk.load_state_dict(fixed_weights({name: tuple(value.shape) for name, value in trunk.state_dict().items()}))
    with torch.no_grad():
        regions = trunk(fixed_images())  # (B, R, C)
    reference = TORCHVISION["layer4"][encoder]
    B, C, h, w = reference["shape"]
    assert regions.shape == (B, h * w, C) and resnet.ResNet.grid_side(64) == h == w == 2
    features = regions.transpose(1, 2).reshape(B, C, h, w)
    expected = torch.tensor(reference["first_channels"])
    assert torch.allclose(features[:, :KEPT_CHANNELS], expected, rtol=1e-4, atol=1e-4)
    assert torch.allclose(features.sum(dim=1), torch.tensor(reference["sum"]), rtol=1e-4)
    assert torch.allclose((features**2).sum(dim=1), torch.tensor(reference["sum_of_squares"]), rtol=1e-4)


def test_the_grid_is_the_image_over_32_rounded_up():
    assert [resnet.ResNet.grid_side(size) for size in (224, 64, 48, 33, 32, 8)] == [7, 2, 2, 2, 1, 1]
    with torch.device("meta"):
        assert resnet.resnet("resnet18")(torch.empty(1, 3, 48, 40)).shape == (1, 2 * 2, 512)


# --- a weights file --------------------------------------------------------------------------------------------
def test_a_torchvision_weights_file_loads_as_is_its_classifier_left_out(weights_file, tmp_path):
    path, weights = weights_file
    network = captioner(encoder_weights=str(path))
    loaded = network.cnn.state_dict()
    assert set(loaded) == {name for name in weights if not name.startswith("fc.")}
    assert all(torch.equal(loaded[name], weights[name]) for name in loaded)
    assert network.grid == (2, 2) and network.init_h.in_features == 512
    assert not any(name.startswith("cnn.fc") for name in network.state_dict())
    # wrapped as a training script saves it, and without batch norm's step counters (files before torch 0.4.1)
    bare = {name: value for name, value in weights.items() if not name.endswith("num_batches_tracked")}
    for wrapper in ("state_dict", "model"):
        torch.save({wrapper: bare, "epoch": torch.tensor(90)}, tmp_path / f"{wrapper}.pth")
        trunk = resnet.resnet("resnet18")
        resnet.load_weights(trunk, "resnet18", tmp_path / f"{wrapper}.pth")
        assert torch.equal(trunk.layer4[1].bn2.running_var, weights["layer4.1.bn2.running_var"])
        assert int(trunk.bn1.num_batches_tracked) == 0


def test_each_bad_weights_file_is_one_line_naming_the_fix(tmp_path):
    with torch.device("meta"):
        names = {encoder: list(resnet.resnet(encoder).state_dict()) for encoder in ("resnet18", "resnet50")}

    (tmp_path / "notes.txt").write_text("not weights\n")
    (tmp_path / "garbled.pth").write_text("hello world\n")
    files = {"object.pth": {"conv1.weight": Fraction(1, 2)}, "tensor.pth": torch.zeros(3),
             "numbers.pth": {"conv1.weight": 1.0}, "resnet50.pth": {name: torch.zeros(1) for name in names["resnet50"]},
             "prefixed.pth": {f"module.{name}": torch.zeros(1) for name in names["resnet18"]},
             "tiny.pth": {name: torch.zeros(1) for name in names["resnet18"]}}
    for name, content in files.items():
        torch.save(content, tmp_path / name)
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "tiny.pth").read_bytes()[:200])
    trunk = resnet.resnet("resnet18")
    for name, message in [
        ("absent.pth", "absent.pth: no such file; give the path of a torchvision weights file .*or "
                       "model.encoder_weights=null to train the encoder from scratch"),
        ("notes.txt", "notes.txt is not a weights file torch.load\\(weights_only=True\\) reads \\(weights_only: "
                      "Unsupported operand 110\\); give a torchvision .pth state dict"),
        ("garbled.pth", "garbled.pth is not a weights file .* \\(KeyError: 101\\)"),
        ("truncated.pth", "truncated.pth is not a weights file .* \\(RuntimeError: PytorchStreamReader failed"),
        ("object.pth", "object.pth is not a weights file .* \\(it holds Python objects \\(fractions.Fraction\\), "
                       "not only tensors, and weights_only refuses them\\)"),
        ("tensor.pth", "tensor.pth holds a Tensor, not a dict of tensors \\(a state dict\\)"),
        ("numbers.pth", "numbers.pth is not a state dict \\(names → tensors\\): it holds 'conv1.weight' → float; "
                        "give a torchvision .pth state dict"),
        ("resnet50.pth", "resnet50.pth does not fit model.encoder=resnet18: 198 unexpected \\(layer1.0.bn3.bias, "
                         "layer1.0.bn3.num_batches_tracked, layer1.0.bn3.running_mean and 195 more\\); looks like "
                         "resnet50 weights: set model.encoder=resnet50"),
        ("prefixed.pth", "does not fit model.encoder=resnet18: 100 missing \\(bn1.bias, bn1.running_mean, "
                         "bn1.running_var and 97 more\\); 120 unexpected \\(module.bn1.bias, .*; not the state dict "
                         "of a torchvision resnet18, resnet34, resnet50: give one, and name it in model.encoder"),
        ("tiny.pth", "tiny.pth has 120 tensors of other shapes than model.encoder=resnet18's, e.g. conv1.weight 1 "
                     "where resnet18 has 64×3×7×7: give the weights of a torchvision resnet18 itself"),
    ]:
        with pytest.raises(ConfigError, match=message) as error:
            resnet.load_weights(trunk, "resnet18", tmp_path / name)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="looks like resnet18 weights: set model.encoder=resnet18"):
        resnet.load_weights(resnet.resnet("resnet50"), "resnet50", tmp_path / "tiny.pth")
    with pytest.raises(ConfigError, match="model.freeze_encoder='yes' is invalid: must be true or false"):
        captioner(freeze_encoder="yes")


# --- frozen, restored -------------------------------------------------------------------------------------------
def test_a_frozen_encoder_neither_learns_nor_moves_imagenets_running_statistics(weights_file):
    path, weights = weights_file
    network = captioner(encoder_weights=str(path), freeze_encoder=True)
    assert not any(p.requires_grad for p in network.cnn.parameters())
    assert all(p.requires_grad for name, p in network.named_parameters() if not name.startswith("cnn."))
    # batch norm reads its running statistics, as built (Lightning trains in that mode) and after train()
    assert not network.cnn.training and network.decoder.training
    assert not network.eval().train().cnn.training and not network.cnn.bn1.training
    network(torch.randn(2, 3, 64, 64), torch.tensor([[1, 5, 6], [1, 7, 8]])).logits.sum().backward()
    assert torch.equal(network.cnn.bn1.running_mean, weights["bn1.running_mean"])
    assert network.init_h.weight.grad is not None
    trainable = captioner(encoder_weights=str(path)).train()
    assert trainable.cnn.training and all(p.requires_grad for p in trainable.cnn.parameters())


def scenes(**options) -> SyntheticScenesDataModule:
    data = SyntheticScenesDataModule(train_images=8, val_images=2, test_images=2, unseen_images=0, unseen=[],
                                     image_size=64, **options)
    data.setup()
    return data


def test_a_checkpoint_restores_without_its_weights_file(weights_file, tmp_path):
    path, weights = weights_file
    copy = tmp_path / "resnet18.pth"
    copy.write_bytes(path.read_bytes())
    data = scenes()
    model = {**DECODER, "encoder": "resnet18", "encoder_weights": str(copy), "freeze_encoder": True}
    task = CaptioningTask(**data.task_inputs, model=model, optimizer={"_target_": "torch.optim.Adam", "lr": 0.01},
                          tokenizer=data.tokenizer_state())
    checkpoint = {"hyper_parameters": dict(task.hparams), "state_dict": task.state_dict()}
    copy.unlink()
    restored = CaptioningTask.from_checkpoint_dict(checkpoint, "memory")
    assert torch.equal(restored.model.cnn.layer3[0].conv2.weight, weights["layer3.0.conv2.weight"])
    assert restored.model.freeze_encoder and not restored.model.cnn.training
    with pytest.raises(ConfigError, match="model.encoder_weights expects images normalised as ImageNet's were, and "
                                          "the data normalises by mean \\[0.5, 0.5, 0.5\\], std \\[0.5, 0.5, 0.5\\]: "
                                          "set data.mean=\\[0.485, 0.456, 0.406\\] data.std=\\[0.229, 0.224, 0.225\\]"):
        other = scenes(mean=[0.5] * 3, std=[0.5] * 3)
        CaptioningTask(**other.task_inputs, model={**model, "encoder_weights": str(path)},
                       optimizer=task.hparams.optimizer, tokenizer=other.tokenizer_state())


# --- train.py -----------------------------------------------------------------------------------------------------
def test_train_py_captions_with_a_pretrained_frozen_resnet18(weights_file, make_cfg, tmp_path):
    path, weights = weights_file
    cfg = make_cfg("task=captioning", "model=gru", "attention=bahdanau", "model.encoder=resnet18",
                   f"model.encoder_weights={path}", "model.freeze_encoder=true", "model.embedding_size=8",
                   "model.hidden_size=16", "data.image_size=64", "data.train_images=32", "data.val_images=4",
                   "data.unseen_images=4", "data.batch_size=16", "trainer.max_epochs=1", "task.beam_size=2",
                   "task.max_len_b=10", "task.num_samples=1", "task.num_attention_images=0", "logger=none",
                   "test=false", "callbacks.progress_bar.refresh_rate=0", "+trainer.enable_model_summary=false",
                   tiny=False)
    metrics = train(cfg)
    assert "val/bleu" in metrics and metrics["val/loss"] == metrics["val/loss"]  # validated, finite
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("epoch*.ckpt")
    task = CaptioningTask.from_checkpoint(checkpoint, "best")
    assert all(torch.equal(value, weights[name]) for name, value in task.model.cnn.state_dict().items())
