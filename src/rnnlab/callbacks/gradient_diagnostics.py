"""`callbacks=gradient_diagnostics`: the vanishing/exploding-gradient chapter, measured on the run.

Gradient through time. For a fixed validation window x_1..x_T (the first one, from a zero state),
with L_T the loss of the *last* prediction only,

    g_k = ‖∂L_T / ∂h_k‖,   k = 1..T,   ∂L_T/∂h_k = ∂L_T/∂h_T · Π_{j=k+1..T} ∂h_j/∂h_{j-1}

(h_k: every layer's hidden state at step k, concatenated; the norm is per sequence, then averaged
over the batch). A vanishing gradient shows as g_k falling geometrically as k moves away from T.
Summary metrics: diag/grad_h_first = g_1, diag/grad_h_last = g_T, diag/grad_ratio = g_1 / g_T.

The recurrence must be unrolled with every h_k a node of the graph. Torch's fused kernels keep the
h_k inside, so for model.backend=fused the diagnostic runs a scratch twin with the same weights
(rnnlab.nn.recurrent.copy_fused_weights: equal to the fused stack within 1e-5).

Spectral view (Elman cells): σ_max(W_rec) per layer, diag/sigma_max_W_rec/l<k>. For a linear
recurrence ‖Π ∂h_j/∂h_{j-1}‖ ≤ σ_max^(T-k) (times tanh's slopes ≤ 1): σ_max < 1 guarantees vanishing.

Also logged each step by the LM task: train/grad_norm, the total gradient norm before clipping.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.seed import isolate_rng

from rnnlab.nn.recurrent import FusedRecurrent, ScratchRecurrent, copy_fused_weights, recurrent_layer
from rnnlab.tracking.artifacts import log_files

log = logging.getLogger(__name__)


def scratch_twin(rnn: FusedRecurrent | ScratchRecurrent) -> ScratchRecurrent:
    """A scratch stack computing the same function as `rnn` (itself, copied, if already scratch)."""
    if isinstance(rnn, ScratchRecurrent):
        return copy.deepcopy(rnn)
    twin = recurrent_layer(rnn.cell, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.dropout,
                           rnn.bidirectional, nonlinearity=getattr(rnn.module, "nonlinearity", "tanh"),
                           backend="scratch", learn_initial_state=rnn.h0 is not None,
                           gru_form="torch" if rnn.cell == "gru" else None)
    copy_fused_weights(rnn, twin)
    return twin.to(next(rnn.parameters()).device)


def gradient_through_time(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """g_k = ‖∂L_T/∂h_k‖ for k = 1..T (a (T,) tensor), for a language model with embedding → rnn → decoder.

    inputs, targets (B, T). Runs in eval mode (no dropout) on a twin: the model is not changed.
    """
    twin = scratch_twin(model.rnn).eval()
    twin.trace = []
    with torch.enable_grad():
        embedded = model.embedding(inputs)
        outputs, _ = twin(embedded)
        last_logits = model.decoder(outputs[:, -1])  # (B, V): the prediction at step T only
        loss = F.cross_entropy(last_logits, targets[:, -1])
        layers = twin.trace  # [layer][k] -> h_k of that layer, (B, H)
        grads = torch.autograd.grad(loss, [h for hs in layers for h in hs], allow_unused=True)
    T = inputs.size(1)
    # (L, T, B): ‖∂L_T/∂h_k‖² per layer; a layer's h_k that cannot reach L_T has gradient 0
    squares = torch.stack([(g ** 2).sum(-1) if g is not None else torch.zeros(inputs.size(0), device=inputs.device)
                           for g in grads]).view(len(layers), T, -1)
    return squares.sum(0).sqrt().mean(-1).detach().cpu()  # norm over all layers' h_k, mean over the batch


def spectral_norms(model: torch.nn.Module) -> dict[str, float]:
    """σ_max(W_rec) per layer for Elman cells (empty for other cells)."""
    rnn = model.rnn
    if rnn.cell != "rnn":
        return {}
    if isinstance(rnn, ScratchRecurrent):
        weights = [cell.W_rec for cell in rnn.cells]
    else:
        weights = [w for name, w in rnn.module.named_parameters() if name.startswith("weight_hh")]
    D = rnn.directions
    names = [f"l{i // D}" + ("_reverse" if i % D else "") for i in range(len(weights))]
    return {name: float(torch.linalg.matrix_norm(w.detach(), ord=2)) for name, w in zip(names, weights)}


class GradientDiagnostics(L.Callback):
    """Every `every_n_epochs` epochs (and after the last), log g_k and σ_max(W_rec) for task=lm models."""

    def __init__(self, output_dir: str | Path, every_n_epochs: int = 1, spectral: bool = True):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs} must be ≥ 1")
        self.output_dir, self.every_n_epochs, self.spectral = Path(output_dir), every_n_epochs, spectral
        self.batch: dict[str, torch.Tensor] | None = None
        self.curves: dict[int, list[float]] = {}  # epoch → g_1..g_T

    # the curves of earlier epochs survive a resume (they are plotted together)
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["gradients_through_time"] = self.curves

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "gradients_through_time" in checkpoint and trainer.state.fn == "fit":  # not test's best checkpoint
            self.curves = dict(checkpoint["gradients_through_time"])

    def _supported(self, pl_module) -> bool:
        model = getattr(pl_module, "model", None)
        return all(hasattr(model, name) for name in ("embedding", "rnn", "decoder"))

    def on_train_epoch_end(self, trainer, pl_module):
        # here, not at validation: validation runs under inference mode, where nothing has a gradient
        epoch = trainer.current_epoch
        last = epoch + 1 >= (trainer.max_epochs or 0) and trainer.max_epochs != -1
        if not self._supported(pl_module) or not ((epoch + 1) % self.every_n_epochs == 0 or last):
            return
        if self.batch is None:
            self.batch = next(iter(trainer.datamodule.val_dataloader()))
        inputs = self.batch["inputs"].to(pl_module.device)
        targets = self.batch["targets"].to(pl_module.device)
        with isolate_rng():  # building the twin draws initial weights: keep training's random stream as it was
            curve = gradient_through_time(pl_module.model, inputs, targets)
        self.curves[epoch] = curve.tolist()
        metrics = {"diag/grad_h_first": curve[0], "diag/grad_h_last": curve[-1],
                   "diag/grad_ratio": curve[0] / curve[-1].clamp_min(1e-30)}
        if self.spectral:
            metrics |= {f"diag/sigma_max_W_rec/{k}": v for k, v in spectral_norms(pl_module.model).items()}
        for logger in trainer.loggers:
            logger.log_metrics({k: float(v) for k, v in metrics.items()}, step=trainer.global_step)
        if trainer.is_global_zero:
            self._save(trainer)

    def _save(self, trainer) -> None:
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        data, plot = out / "gradients_through_time.json", out / "gradients_through_time.png"
        data.write_text(json.dumps({"quantity": "mean_b ||dL_T/dh_k||", "curves": self.curves}, indent=1) + "\n")
        plot_curves(self.curves, plot)
        log_files(trainer.loggers, [data, plot])


def plot_curves(curves: dict[int, list[float]], path: Path, title: str = "gradient through time") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("viridis")
    epochs = sorted(curves)
    for i, epoch in enumerate(epochs):
        values = curves[epoch]
        ax.semilogy(range(1, len(values) + 1), values, color=cmap(i / max(1, len(epochs) - 1)),
                    label=f"epoch {epoch + 1}")
    ax.set(xlabel="k (time step; loss at k = T)", ylabel="‖∂L_T/∂h_k‖", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
