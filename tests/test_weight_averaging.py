"""callbacks.weight_averaging: θ̄ is the exponential average of the trajectory, and it is what is validated,
checkpointed, tested and read back; a resumed run restores θ and θ̄ both."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from conftest import compose_train
from test_resume import LM, Crash, fit, untimed

from rnnlab import checkpoint_io
from rnnlab.errors import ConfigError
from rnnlab.tracking.run_info import CurveRecorder
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

# 24 windows an epoch: epoch 0 is validated before the first averaged step (index 30), epoch 1 after the last
AVERAGED = ["callbacks.weight_averaging.decay=0.8", "callbacks.weight_averaging.start_step=30", "logger=none",
            "callbacks.gradient_diagnostics=null", "callbacks.samples=null"]


class Trajectory(L.Callback):
    """θ after every optimizer step, and the weights the model holds when training ends."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_train_end(self, trainer, pl_module):  # after the averaging callback's: θ̄ is in place
        self.final = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_the_average_is_the_exponential_average_of_the_steps_and_what_is_tested_and_saved(tmp_path):
    trajectory, curve = Trajectory(), CurveRecorder()
    metrics = train(compose_train([*LM, *AVERAGED], tmp_path), extra_callbacks=[trajectory, curve])
    assert len(trajectory.steps) == 48  # 24 windows × 2 epochs
    average = dict(trajectory.steps[30])  # θ̄ = θ at step index 30, then θ̄ ← 0.8 θ̄ + 0.2 θ
    for theta in trajectory.steps[31:]:
        average = {k: 0.8 * average[k] + 0.2 * theta[k] for k in average}
    for key, value in trajectory.final.items():
        torch.testing.assert_close(value, average[key], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(trajectory.final["model.decoder.weight"], trajectory.steps[-1]["model.decoder.weight"])

    # the last epoch's checkpoint holds θ̄ as its weights, θ beside it; the test scored θ̄ (the best checkpoint)
    best = next((tmp_path / "run" / "checkpoints").glob("epoch001-*.ckpt"))
    checkpoint = checkpoint_io.load(best, "the checkpoint")
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(value, average[key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(checkpoint["current_model_state"][key], trajectory.steps[-1][key])
    plain_curve = CurveRecorder()  # the same run without averaging: the same θ at every step
    plain = train(compose_train([*LM, *AVERAGED[2:]], tmp_path / "plain"), extra_callbacks=[plain_curve])
    assert metrics["test/loss"] != pytest.approx(plain["test/loss"], rel=1e-4)
    assert curve.val[0] == plain_curve.val[0]  # epoch 0, before the first averaged step: θ was validated
    assert curve.val[1] != plain_curve.val[1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return untimed(fit([*LM, *AVERAGED], tmp_path_factory.mktemp("uninterrupted")))


@pytest.mark.parametrize("crash", [33, 43])  # last.ckpt at step 30 (nothing averaged yet) and at 40 (θ̄ of 10 steps)
def test_a_run_with_an_average_resumed_mid_epoch_ends_as_if_never_stopped(crash, uninterrupted, tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        fit([*LM, *AVERAGED], tmp_path, Crash(crash))
    checkpoint = checkpoint_io.load(tmp_path / "run" / "checkpoints" / "last.ckpt", "the checkpoint")
    assert ("current_model_state" in checkpoint) == (crash > 40)
    if crash > 40:  # without the callback training would go on from θ̄ (the checkpoint's weights), not from θ
        with pytest.raises(ConfigError, match="the run averaged its weights .* resume with the run's callbacks"):
            fit([*LM, *AVERAGED[2:], f"resume={tmp_path / 'run'}"], tmp_path)
    assert untimed(fit([*LM, *AVERAGED, f"resume={tmp_path / 'run'}"], tmp_path)) == uninterrupted


@pytest.mark.parametrize(("override", "message"), [
    ("callbacks.weight_averaging.decay=1", "callbacks.weight_averaging.decay=1 is invalid: the average's weight"),
    ("callbacks.weight_averaging.decay=0.9 callbacks.weight_averaging.every_n_steps=0",
     "callbacks.weight_averaging.every_n_steps=0 is invalid"),
])
def test_bad_settings_are_one_line(override, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as error:
        train(compose_train([*LM, "logger=none", *override.split()], tmp_path))
    assert "\n" not in str(error.value)
