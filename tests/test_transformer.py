"""model=transformer: torch's own layer, incremental decoding equal to recomputation, masks, one-line errors, and
the paths model=gru takes (train, eval.py, generation, resume=, translation with its heatmaps, sweeps)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import CONF, TINY, compose_train, tracked_fit
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class
from omegaconf import OmegaConf
from test_translation_task import write_pairs
from torch import nn

from rnnlab import decoding, generation
from rnnlab.errors import ConfigError
from rnnlab.evaluation import evaluate
from rnnlab.models.transformer import TransformerLayer, TransformerLM, TransformerSeq2Seq
from rnnlab.tasks.language_modeling import LanguageModelingTask
from rnnlab.tasks.translation import TranslationTask
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = dict(d_model=16, nhead=2, num_layers=2, dim_feedforward=32, dropout=0.0)
IDS = dict(pad_id=0, bos_id=1, eos_id=2)


def lm(seed: int = 0, **options) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(13, **{**SIZES, "max_length": 16, **options}).eval()


def seq2seq(seed: int = 0, **options) -> TransformerSeq2Seq:
    torch.manual_seed(seed)
    return TransformerSeq2Seq(11, 13, **IDS, **{**SIZES, "max_length": 24, **options}).eval()


def padded_batch(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random source sentences (ids 3..10) of these lengths, padded with pad_id 0."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 11, (len(lengths), max(lengths)), generator=generator)
    for row, length in enumerate(lengths):
        src[row, length:] = 0
    return src, torch.tensor(lengths)


# --- the layer is torch's Transformer layer -----------------------------------------------------------------
def copy_attention(ours, theirs: nn.MultiheadAttention) -> None:
    q, k, v = theirs.in_proj_weight.chunk(3)
    bq, bk, bv = theirs.in_proj_bias.chunk(3)
    for linear, weight, bias in ((ours.W_q, q, bq), (ours.W_k, k, bk), (ours.W_v, v, bv),
                                 (ours.W_o, theirs.out_proj.weight, theirs.out_proj.bias)):
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)


@pytest.mark.parametrize("norm_first", [True, False])
@torch.no_grad()
def test_a_layer_computes_torchs_transformer_encoder_and_decoder_layer(norm_first):
    torch.manual_seed(0)
    d, heads, ff = 16, 4, 24
    options = dict(dim_feedforward=ff, dropout=0.0, batch_first=True, norm_first=norm_first)
    x, memory = torch.randn(3, 5, d), torch.randn(3, 7, d)
    padding = torch.arange(7)[None, :] >= torch.tensor([7, 4, 2])[:, None]  # torch's masks: True = left out

    encoder = nn.TransformerEncoderLayer(d, heads, **options).eval()
    ours = TransformerLayer(d, heads, ff, 0.0, 0.0, norm_first).eval()
    ours.self_norm.load_state_dict(encoder.norm1.state_dict())
    ours.feed_forward_norm.load_state_dict(encoder.norm2.state_dict())
    copy_attention(ours.self_attention, encoder.self_attn)
    ours.feed_forward[0].load_state_dict(encoder.linear1.state_dict())
    ours.feed_forward[3].load_state_dict(encoder.linear2.state_dict())
    expected = encoder(memory, src_key_padding_mask=padding)
    got, _, _ = ours(memory, (~padding)[:, None, None, :])
    real = ~padding
    assert torch.allclose(got[real], expected[real], atol=1e-5)

    decoder = nn.TransformerDecoderLayer(d, heads, **options).eval()
    ours = TransformerLayer(d, heads, ff, 0.0, 0.0, norm_first, with_memory=True).eval()
    for mine, theirs in ((ours.self_norm, decoder.norm1), (ours.cross_norm, decoder.norm2),
                         (ours.feed_forward_norm, decoder.norm3), (ours.feed_forward[0], decoder.linear1),
                         (ours.feed_forward[3], decoder.linear2)):
        mine.load_state_dict(theirs.state_dict())
    copy_attention(ours.self_attention, decoder.self_attn)
    copy_attention(ours.cross_attention, decoder.multihead_attn)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    expected = decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding)
    keys = ours.cross_attention.keys_values(memory)
    got, _, weights = ours(x, torch.isfinite(causal), memory=keys, memory_mask=(~padding)[:, None, None, :],
                           need_weights=True)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(3, heads, 5)) and (weights[2, :, :, 2:] == 0).all()


# --- task=lm: incremental equals full, the window slides ----------------------------------------------------
@pytest.mark.parametrize(("positional", "norm_first"), [("sinusoidal", True), ("learned", False)])
@torch.no_grad()
def test_the_lm_read_token_by_token_from_its_cache_equals_one_pass(positional, norm_first):
    model = lm(positional=positional, norm_first=norm_first)
    tokens = torch.randint(0, 13, (3, 12), generator=torch.Generator().manual_seed(1))
    full, state = model(tokens)
    assert state is None  # task=lm carries nothing from one window to the next
    logits, cache = model(tokens[:, :5], model.generation_state())  # a prompt, then one token at a time
    pieces = [logits]
    for t in range(5, 12):
        logits, cache = model(tokens[:, t: t + 1], cache)
        pieces.append(logits)
    assert cache.length == 12 and cache.layers[0].keys.shape == (3, 2, 12, 8)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


@torch.no_grad()
def test_past_max_length_the_window_slides_to_its_last_half():
    model = lm(max_length=8)
    tokens = torch.randint(0, 13, (1, 20), generator=torch.Generator().manual_seed(2))
    logits, cache = model(tokens, model.generation_state())
    assert logits.shape == (1, 20, 13) and cache.length == 8 and torch.equal(cache.tokens, tokens[:, 12:])
    # reads 0..7; then 4..7 again from position 0 and 8..11; then 8..15; then 12..19: the last window's own pass
    assert torch.allclose(logits[:, 16:], model(tokens[:, 12:20])[0][:, 4:], atol=1e-5)
    assert torch.allclose(logits[:, :8], model(tokens[:, :8])[0], atol=1e-5)
    drawn = generation.sample(model, [3, 4], max_tokens=30, greedy=True)
    assert len(drawn) == 30


@torch.no_grad()
def test_the_lm_task_evaluates_each_window_after_the_previous_ones_and_trains_on_one_alone():
    task = LanguageModelingTask(13, {"family": "transformer", **SIZES,
                                     "max_length": 16}, {"_target_": "torch.optim.Adam"}).eval()
    model = task.model
    stream = torch.randint(0, 13, (2, 40), generator=torch.Generator().manual_seed(3))
    windows = [{"inputs": stream[:, t: t + 8]} for t in range(0, 40, 8)]
    seen = torch.cat([task._logits(window, "val") for window in windows], dim=1)
    # inside max_length: the second window reads the first, as one pass over both would
    assert torch.allclose(seen[:, :16], model(stream[:, :16])[0], atol=1e-5)
    # past it, the cache slid to its last half: tokens 24..31 read 16..23 before them, never fewer than 8 tokens
    assert torch.allclose(seen[:, 24:32], model(stream[:, 16:32])[0][:, 8:], atol=1e-5)
    assert not torch.allclose(seen[:, 8:16], model(stream[:, 8:16])[0], atol=1e-3)  # the window alone differs
    # training reads each window alone (nothing carried, as trained); so does evaluation with carry_state=false
    assert torch.allclose(task._logits(windows[1], "train"), model(stream[:, 8:16])[0], atol=1e-5)
    task.carry_state = False
    assert torch.allclose(task._logits(windows[1], "test"), model(stream[:, 8:16])[0], atol=1e-5)


# --- task=translation: incremental equals teacher-forced, beam 1 is greedy, padding changes nothing -----------
@pytest.mark.parametrize("norm_first", [True, False])
@torch.no_grad()
def test_decoding_step_by_step_from_the_cache_equals_the_teacher_forced_pass(norm_first):
    model = seq2seq(norm_first=norm_first, num_encoder_layers=1, num_decoder_layers=3)
    src, src_lengths = padded_batch([7, 5, 3, 6])
    tgt_in = torch.cat([torch.ones(4, 1, dtype=torch.long), torch.randint(3, 13, (4, 7))], dim=1)
    forced = model(src, src_lengths, tgt_in)
    memory, state = model.encode(src, src_lengths)
    logits, attention = [], []
    for t in range(tgt_in.size(1)):
        step_logits, state, weights = model.step(tgt_in[:, t], state, memory)
        logits.append(step_logits)
        attention.append(weights)
    assert torch.allclose(torch.stack(logits, 1), forced.logits, atol=1e-5)
    assert torch.allclose(torch.stack(attention, 1), forced.attention, atol=1e-5)
    assert forced.attention.shape == (4, 8, 7) and (forced.attention[2, :, 3:] == 0).all()


@torch.no_grad()
def test_beam_size_one_is_greedy_and_a_wider_beam_scores_at_least_as_well():
    model = seq2seq()
    src, src_lengths = padded_batch([7, 5, 3, 6, 2])
    greedy = decoding.greedy(model, src, src_lengths, (1.5, 4), return_attention=True)
    beam = decoding.beam_search(model, src, src_lengths, 1, 0.0, (1.5, 4), return_attention=True)
    assert beam.tokens == greedy.tokens
    assert torch.allclose(beam.scores, greedy.scores, atol=1e-5)
    assert all(torch.allclose(b, g, atol=1e-6) for b, g in zip(beam.attention, greedy.attention))
    wide = decoding.beam_search(model, src, src_lengths, 4, 0.0, (1.5, 4))
    assert (wide.scores >= beam.scores - 1e-5).all()


@torch.no_grad()
def test_source_padding_never_changes_the_output():
    model = seq2seq()
    src, src_lengths = padded_batch([4, 6, 3])
    tgt_in = torch.tensor([[1, 5, 6, 7]] * 3)
    alone = torch.stack([model(src[b: b + 1, :n], src_lengths[b: b + 1], tgt_in[b: b + 1]).logits[0]
                         for b, n in enumerate(src_lengths.tolist())])
    extra = torch.cat([src, torch.zeros(3, 5, dtype=torch.long)], dim=1)  # five more pad columns
    for batch in (src, extra):
        assert torch.allclose(model(batch, src_lengths, tgt_in).logits, alone, atol=1e-6)
    beams = [decoding.beam_search(model, batch, src_lengths, 3, 1.0, 9) for batch in (src, extra)]
    assert beams[0].tokens == beams[1].tokens


@torch.no_grad()
def test_decoders_stop_a_hypothesis_at_max_length():
    model = seq2seq(max_length=6)
    src, src_lengths = padded_batch([5, 4])
    assert max(map(len, decoding.greedy(model, src, src_lengths, 50).tokens)) <= 6
    assert max(map(len, decoding.beam_search(model, src, src_lengths, 2, 1.0, 50).tokens)) <= 6


# --- one-line errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("build", "message"), [
    (lambda: lm(d_model=18, nhead=4),
     "model.d_model=18 is not divisible by model.nhead=4: .* model.nhead=3 or model.d_model=16"),
    (lambda: lm(positional="rotary"), "model.positional='rotary' is invalid: choose one of sinusoidal, learned"),
    (lambda: lm(num_encoder_layers=2), "model.num_encoder_layers=2 applies to task=translation only"),
    (lambda: lm(attention_dropout=1.0), r"model.attention_dropout=1.0 is invalid: must be in \[0, 1\)"),
    (lambda: seq2seq(num_decoder_layers=0), "model.num_decoder_layers=0 is invalid: must be a positive integer"),
    (lambda: lm(max_length=8)(torch.zeros(1, 9, dtype=torch.long)),
     r"model.max_length=8 is shorter than the window of 9 tokens \(data.bptt\): set model.max_length ≥ 9"),
    (lambda: seq2seq(max_length=4)(*padded_batch([5]), torch.ones(1, 2, dtype=torch.long)),
     "a source sentence of 5 tokens is longer than model.max_length=4: set model.max_length ≥ 5"),
    (lambda: seq2seq(max_length=4)(*padded_batch([3]), torch.ones(1, 6, dtype=torch.long)),
     "a target sentence of 6 tokens is longer than model.max_length=4"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(build, message):
    with pytest.raises(ConfigError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


# --- configs: one sweep runs both families ------------------------------------------------------------------
@pytest.mark.parametrize("task", ["lm", "translation"])
def test_a_sweep_over_gru_and_transformer_composes_and_builds_both(task, tmp_path, caplog):
    """`train.py -m model=gru,transformer` (with a preset sizing the GRU): each job's config builds its task; the
    GRU's keys (and the recurrent models' own keys that task=lm and task=translation add) are ignored by the
    Transformer, and the log says so."""
    preset = ["experiment=quick"] if task == "lm" else ["task=translation", "attention=luong_general"]
    inputs = {"lm": dict(vocab_size=20), "translation": dict(src_vocab_size=20, tgt_vocab_size=21, **IDS)}[task]
    built = {}
    for model in ("gru", "transformer"):
        cfg = compose_train([*preset, f"model={model}"], tmp_path)
        plain = OmegaConf.to_container(cfg, resolve=True)
        task_class = get_class(cfg.task._target_)
        options = {key: value for key, value in plain["task"].items() if key != "_target_"}
        with caplog.at_level(logging.INFO, logger="rnnlab.tasks.base"):
            built[model] = task_class(**inputs, model=plain["model"], optimizer=plain["optimizer"], **options).model
    assert type(built["transformer"]).__name__ == ("TransformerLM" if task == "lm" else "TransformerSeq2Seq")
    ignored = ("model.embedding_init, model.embedding_size, model.hidden_size" if task == "lm" else "model.attention, "
               "model.encoder_hidden_size, model.input_feeding, model.reverse_source, model.teacher_forcing")
    assert caplog.messages == [f"model=transformer has no {ignored}: ignored"]  # the GRU takes them all
    GlobalHydra.instance().clear()


# --- end to end: task=lm ------------------------------------------------------------------------------------
LM = [*(o for o in TINY if not o.startswith("model.")), "model=transformer", "model.num_layers=1", "model.d_model=32",
      "model.nhead=4", "model.dim_feedforward=64", "optimizer.lr=0.005", "data.train_tokens=12000",
      "trainer.deterministic=true", "callbacks.last_checkpoint.every_n_steps=5", "callbacks.samples.max_tokens=40",
      "callbacks.progress_bar.refresh_rate=0"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    return tracked_fit(LM, tmp_path_factory.mktemp("transformer_lm"))


def compose_eval(*overrides: str, uri: str, log_dir: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("eval", overrides=[*overrides, f"tracking_uri={uri}", f"paths.log_dir={log_dir}"])
    GlobalHydra.instance().clear()
    return cfg


def test_a_transformer_lm_trains_scores_again_in_eval_py_and_writes(lm_run, tmp_path):
    metrics = lm_run["metrics"]
    assert lm_run["cfg"].model.max_length == 32  # data.bptt: the window it reads
    again = evaluate(compose_eval(f"ckpt={lm_run['run_id']}", uri=lm_run["uri"], log_dir=tmp_path))
    assert again["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-6)
    samples = (lm_run["dir"] / "samples" / "epoch_000.txt").read_text()
    assert samples.count("--- sample ") == 3
    model, tokenizer = generation.load_checkpoint(lm_run["run_id"], lm_run["uri"])  # what generate.py does
    text = generation.write(model, tokenizer, "", max_tokens=20, generator=torch.Generator().manual_seed(0))
    assert text.split() and set(text.split()) <= set(tokenizer.vocab)
    drawn = generation.sample(model, [tokenizer.eos_id], 80, generator=torch.Generator().manual_seed(0))  # no stop
    assert len(drawn) == 80  # 2.5 windows: it slid
    assert metrics["val/ppl"] < 0.8 * len(tokenizer.vocab)  # after 24 steps, well below a uniform guess


def test_a_transformer_lm_resumed_mid_epoch_ends_as_if_never_stopped(lm_run, tmp_path):
    import lightning.pytorch as L

    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 12:
                raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):  # logged to CSV: MLflow's store costs seconds, not the point
        train(compose_train([*LM, "logger=csv"], tmp_path), extra_callbacks=[Crash()])
    resumed = train(compose_train([*LM, "logger=csv", f"resume={tmp_path / 'run'}"], tmp_path))
    timed = {"fit_seconds", "fit_cpu_seconds", "train/tokens_per_s"}
    assert {k: v for k, v in resumed.items() if k not in timed} == \
        {k: v for k, v in lm_run["metrics"].items() if k not in timed}


# --- end to end: task=translation ---------------------------------------------------------------------------
def test_a_tiny_transformer_learns_20_pairs_draws_heatmaps_and_translates_from_its_checkpoint(tmp_path):
    files = write_pairs(tmp_path)  # the same 20 pairs are train, val and test
    metrics = train(compose_train([
        "task=translation", "data=parallel_text", "model=transformer", "logger=none", "callbacks.early_stopping=null",
        "callbacks.last_checkpoint=null",
        "callbacks.progress_bar.refresh_rate=0", *[f"data.{key}={path}" for key, path in files.items()],
        "data.batch_size=20", "data.cache_dir=null", "data.tokenizer=word", "data.min_frequency=1",
        "model.d_model=32", "model.nhead=4", "model.dim_feedforward=64", "model.num_layers=1",
        "model.num_decoder_layers=2", "model.dropout=0.0", "model.max_length=32", "optimizer.lr=0.01",
        "trainer.max_epochs=100", "+trainer.check_val_every_n_epoch=100", "+trainer.num_sanity_val_steps=0",
        "+trainer.enable_model_summary=false", "task.beam_size=3", "task.num_samples=3", "task.num_heatmaps=2"],
        tmp_path))
    assert metrics["val/bleu"] >= 95 and metrics["test/bleu"] >= 95 and metrics["val/ppl"] < 1.5
    # the files MLflow gets: the last layer's cross-attention, head-averaged, for the first num_heatmaps samples
    heatmaps = sorted(path.name for path in (tmp_path / "run" / "attention").iterdir())
    assert heatmaps == ["val_epoch_099_sentence_0000.png", "val_epoch_099_sentence_0006.png"]
    best = next((tmp_path / "run" / "checkpoints").glob("epoch*.ckpt"))
    task = TranslationTask.from_checkpoint(best, "best", decode="greedy")  # what translate.py does
    assert type(task.model).__name__ == "TransformerSeq2Seq" and len(task.model.decoder.layers) == 2
    sources = Path(files["train_src"]).read_text().splitlines()[:3]
    references = Path(files["train_tgt"]).read_text().splitlines()[:3]
    assert task.translate([sources[0], "", *sources[1:]]) == [references[0], "", *references[1:]]
