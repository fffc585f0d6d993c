"""The peers study's pure parts: one recipe mapped to rnnlab overrides and to each peer's own settings, the
peers' log lines parsed, shared subwords written as plain text, the allocator settings. No measurement here.

Translation (rnnlab vs JoeyNMT 2.3.0). Both read the SAME subword segmentation: rnnlab's joint 8k BPE (the
recipe's, Hugging Face `tokenizers`) splits every sentence once; JoeyNMT reads those pieces as words
(`level: word`) with the same 8000-entry vocabulary file, so every batch holds the same target tokens on both
sides, target tokens/s mean the same thing, and both outputs detokenize the same way (`detokenize`) before
the same sacreBLEU. (JoeyNMT's own sentencepiece BPE of the same size would segment differently: tokens/s would
then count different tokens.)

Word LM (rnnlab vs pytorch/examples word_language_model): `EXAMPLE_DEFAULTS` are main.py's argparse
defaults; `rnnlab_lm_overrides` maps each to rnnlab's key (README: the table).
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

# -- translation: one recipe, two spellings ---------------------------------------------------------------

# experiment=multi30k_best's sizes (conf/experiment/multi30k_best.yaml); a constant rate for the throughput
# runs since JoeyNMT's plateau scheduler cannot run on torch 2.13 (it passes `verbose=`)
TRANSLATION = dict(vocab_size=8000, embedding_size=256, hidden_size=256, dropout=0.3, label_smoothing=0.1,
                   batch_size=64, lr=0.002, clip_norm=0.5, max_length=100, beam_size=5, length_penalty=1.0,
                   eval_batch_size=128, seed=42)


def rnnlab_translation_overrides(data_root: str | Path, input_feeding: bool, recipe: dict = TRANSLATION) -> list[str]:
    """train.py overrides: experiment=multi30k_best's model and data, every value said here (so a change of the
    preset cannot silently desynchronise the two sides), at a constant rate (`scheduler: none`, as the peer's)."""
    return ["task=translation", "data=multi30k", "model=gru", "attention=luong_general",
                 f"data.root={data_root}", "data.download=false",
                 f"data.vocab_size={recipe['vocab_size']}", "data.tokenizer=bpe", "data.joint_vocab=true",
                 f"data.batch_size={recipe['batch_size']}", f"data.max_length={recipe['max_length']}",
                 f"data.eval_batch_size={recipe['eval_batch_size']}",
                 f"model.embedding_size={recipe['embedding_size']}", f"model.hidden_size={recipe['hidden_size']}",
                 f"model.encoder_hidden_size={recipe['hidden_size']}", "model.bidirectional=true",
                 "model.num_layers=1", f"model.dropout={recipe['dropout']}", "model.tie_weights=true",
                 f"model.input_feeding={str(input_feeding).lower()}",
                 f"task.label_smoothing={recipe['label_smoothing']}", "task.decode=beam",
                 f"task.beam_size={recipe['beam_size']}", f"task.length_penalty={recipe['length_penalty']}",
                 "optimizer=adam", f"optimizer.lr={recipe['lr']}", f"trainer.gradient_clip_val={recipe['clip_norm']}",
                 f"seed={recipe['seed']}"]


def joeynmt_config(data_dir: str | Path, model_dir: str | Path, input_feeding: bool, *, updates: int | None = None,
                   logging_freq: int = 100, validation_freq: int | None = None, recipe: dict = TRANSLATION) -> dict:
    """JoeyNMT 2.3.0's config for the same model and data. `data_dir` holds {train,val,test}.{de,en} as pieces
    and vocab.txt (prepare.py). No validation_freq: never validates (JoeyNMT requires a multiple of logging_freq)."""
    data_dir = Path(data_dir)
    if validation_freq is None:
        validation_freq = logging_freq * 10**9
    side = dict(level="word", voc_file=str(data_dir / "vocab.txt"), max_length=recipe["max_length"],
                lowercase=False, normalize=False)
    dropout = recipe["dropout"]
    # JoeyNMT takes each side's embedding dropout (emb_dropout) from its `embeddings` section
    embeddings = dict(embedding_dim=recipe["embedding_size"], scale=False, dropout=dropout)
    training = dict(
        model_dir=str(model_dir), overwrite=True, random_seed=recipe["seed"], use_cuda=False,
        optimizer="adam", learning_rate=recipe["lr"], learning_rate_min=1e-8, adam_betas=[0.9, 0.999],
        scheduling="exponential", decrease_factor=1.0,  # a constant rate: `plateau` passes torch 2.13 a `verbose=`
        label_smoothing=recipe["label_smoothing"], clip_grad_norm=recipe["clip_norm"],
        batch_size=recipe["batch_size"], batch_type="sentence", normalization="tokens", shuffle=True,
        epochs=1000, logging_freq=logging_freq, validation_freq=validation_freq,
        early_stopping_metric="bleu", keep_best_ckpts=1, print_valid_sents=[])
    if updates is not None:
        training["updates"] = updates
    return {
        "name": f"peers_joeynmt_if{int(input_feeding)}",
        "joeynmt_version": "2.3.0",
        "data": {"train": str(data_dir / "train"), "dev": str(data_dir / "val"), "test": str(data_dir / "test"),
                 "dataset_type": "plain", "src": {"lang": "de", **side}, "trg": {"lang": "en", **side}},
        "testing": {"beam_size": recipe["beam_size"], "beam_alpha": recipe["length_penalty"],
                    "batch_size": recipe["eval_batch_size"], "batch_type": "sentence", "eval_metrics": ["bleu"],
                    "sacrebleu_cfg": {"tokenize": "13a"}},
        "training": training,
        "model": {
            # embeddings as rnnlab's seq2seq starts them, U(-0.1, 0.1); JoeyNMT's `normal` is N(0, 0.01²), with
            # which its model learned several times slower per step (experiments/peers/README.md, "The budget")
            "initializer": "xavier_uniform", "bias_initializer": "zeros", "embed_initializer": "uniform",
            "embed_init_weight": 0.1,
            "tied_embeddings": False, "tied_softmax": True,  # rnnlab's tie_weights: E_tgt is the output layer
            "encoder": {"type": "recurrent", "rnn_type": "gru", "hidden_size": recipe["hidden_size"],
                        "bidirectional": True, "num_layers": 1, "dropout": dropout, "embeddings": embeddings},
            "decoder": {"type": "recurrent", "rnn_type": "gru", "hidden_size": recipe["hidden_size"],
                        "num_layers": 1, "attention": "luong", "input_feeding": input_feeding,
                        "init_hidden": "bridge", "dropout": dropout, "hidden_dropout": dropout,
                        "embeddings": embeddings},
        },
    }


SPLIT_FILES = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def pieces_line(tokens: Sequence[str]) -> str:
    """Subword pieces as one line JoeyNMT's word level splits back exactly (on single spaces)."""
    if any(" " in token or not token for token in tokens):
        raise ValueError(f"a piece is empty or holds a space: {tokens}")
    return " ".join(tokens)


def detokenize(pieces: str) -> str:
    """A line of Metaspace pieces ("▁A ▁man ▁rides .") back to text ("A man rides."), as rnnlab's decoder does."""
    return "".join(pieces.split(" ")).replace("▁", " ").strip()


# -- word LM: the example's defaults, mapped ----------------------------------------------------------------

# pytorch/examples word_language_model/main.py's argparse defaults (the commit in ../shared/peers/README.md)
EXAMPLE_DEFAULTS = dict(model="LSTM", emsize=200, nhid=200, nlayers=2, lr=20.0, clip=0.25, epochs=40, batch_size=20,
                        bptt=35, dropout=0.2, tied=False, seed=1111, eval_batch_size=10)


def rnnlab_lm_overrides(corpus_dir: str | Path, example: dict = EXAMPLE_DEFAULTS) -> list[str]:
    """train.py overrides for the example's model and training: one rnnlab key per main.py default."""
    corpus_dir = Path(corpus_dir)
    if example["model"] != "LSTM":
        raise ValueError(f"only the LSTM is mapped, not {example['model']}")
    return [
        "data=text", f"data.train_path={corpus_dir / 'train.txt'}", f"data.val_path={corpus_dir / 'valid.txt'}",
        f"data.test_path={corpus_dir / 'test.txt'}", "data.level=word", "data.min_frequency=1",
        f"data.batch_size={example['batch_size']}", f"data.eval_batch_size={example['eval_batch_size']}",
        f"data.bptt={example['bptt']}",
        "model=lstm", f"model.embedding_size={example['emsize']}", f"model.hidden_size={example['nhid']}",
        f"model.num_layers={example['nlayers']}", f"model.dropout={example['dropout']}",
        f"model.tie_weights={str(example['tied']).lower()}", "model.backend=fused",
        "model.embedding_init=uniform",  # main.py's model.py draws its encoder from U(±0.1)
        "optimizer=sgd", f"optimizer.lr={example['lr']}", "optimizer.momentum=0.0",
        f"trainer.gradient_clip_val={example['clip']}", "trainer.gradient_clip_algorithm=norm",
        # main.py divides lr by 4 after any epoch whose validation loss is not the best so far
        "scheduler=plateau", "scheduler.scheduler.factor=0.25", "scheduler.scheduler.patience=0",
        "monitor.metric=val/loss", "monitor.mode=min",
        f"trainer.max_epochs={example['epochs']}", f"seed={example['seed']}",
    ]


def example_lm_args(corpus_dir: str | Path, log_interval: int, epochs: int = 1, save: str | Path = "model.pt",
                    example: dict = EXAMPLE_DEFAULTS) -> list[str]:
    """main.py's command line: its defaults left alone, only the data, the log interval, epochs and the save path."""
    return ["--data", str(corpus_dir), "--log-interval", str(log_interval), "--epochs", str(epochs),
            "--save", str(save)]


WORD = re.compile(r"\w+|[^\w\s]")


def word_tokens(line: str) -> list[str]:
    """Words and punctuation marks of a raw sentence ("A man's hat." → A man ' s hat .), as WikiText ships them."""
    return WORD.findall(line)


def lm_corpus(train: Iterable[str], others: dict[str, Iterable[str]]) -> dict[str, list[str]]:
    """Tokenized lines of each split; in val/test a word unseen in training becomes <unk> (as PTB and WikiText
    ship), so main.py's vocabulary (train ∪ valid ∪ test) equals rnnlab's (train + <unk>, <eos>)."""
    splits = {"train": [" ".join(word_tokens(line)) for line in train]}
    known = {word for line in splits["train"] for word in line.split()}
    for name, lines in others.items():
        splits[name] = [" ".join(w if w in known else "<unk>" for w in word_tokens(line)) for line in lines]
    return splits


# -- the peers' logs ------------------------------------------------------------------------------------

EXAMPLE_EPOCH = re.compile(r"end of epoch\s+(\d+) \|.*valid ppl\s+([\d.]+)")
JOEY_RATE = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+([\d.]+)")
EXAMPLE_RATE = re.compile(r"\|\s+(\d+)/\s*\d+ batches \|.*ms/batch\s+([\d.]+)")


def joeynmt_rates(log: str) -> list[tuple[int, float]]:
    """(step, target tokens/s over the logging interval ending there) of each JoeyNMT training log line."""
    return [(int(step), float(rate)) for step, rate in JOEY_RATE.findall(log)]


def example_rates(log: str, tokens_per_batch: int) -> list[tuple[int, float]]:
    """(batch, tokens/s over the log interval ending there) of each main.py progress line.

    main.py's first line divides the time of batches 0..N by N (one batch too many); every later one covers
    exactly N batches, so callers drop the first as warm-up anyway."""
    return [(int(batch), tokens_per_batch / (float(ms) / 1000)) for batch, ms in EXAMPLE_RATE.findall(log)]


def example_valid_ppl(log: str) -> list[tuple[int, float]]:
    """(epoch, validation perplexity) of each of main.py's end-of-epoch lines."""
    return [(int(epoch), float(ppl)) for epoch, ppl in EXAMPLE_EPOCH.findall(log)]


def rnnlab_valid_ppl(metrics_csv: str) -> list[tuple[int, float]]:
    """(epoch, val/ppl), epochs counted from 1 as main.py counts them, of a CSVLogger metrics.csv."""
    rows = csv.DictReader(io.StringIO(metrics_csv))
    return [(int(row["epoch"]) + 1, float(row["val/ppl"])) for row in rows if row.get("val/ppl")]


# -- allocators -----------------------------------------------------------------------------------------

# glibc tunables that keep freed memory in the process instead of unmapping it (issue 20: the peer spent ~30 % of
# its CPU time in the kernel mapping and unmapping the autograd buffers without them)
GLIBC_TUNED = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296",
               "MALLOC_TOP_PAD_": "1073741824"}
# Debian's libjemalloc2 and libtcmalloc-minimal4 (apt-get install libjemalloc2 libtcmalloc-minimal4)
LIBRARIES = {"jemalloc": "libjemalloc.so.2", "tcmalloc": "libtcmalloc_minimal.so.4"}
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
# retain: rnnlab's own default (allocator=retain, rnnlab/allocator.py: the same idea as GLIBC_TUNED, set by mallopt
# from inside the process); every other setting runs rnnlab with allocator=system, so the environment decides
ALLOCATORS = ("glibc", "glibc_tuned", "retain", "jemalloc", "tcmalloc")
RNNLAB_ONLY = ("retain",)


def allocator_env(name: str, library_dirs: Sequence[str | Path] = LIBRARY_DIRS) -> dict[str, str] | None:
    """The environment that selects allocator `name`; None when its library is not installed."""
    if name in ("glibc", "retain"):
        return {}
    if name == "glibc_tuned":
        return dict(GLIBC_TUNED)
    if name not in LIBRARIES:
        raise ValueError(f"unknown allocator {name!r}: choose one of {', '.join(ALLOCATORS)}")
    for directory in library_dirs:
        path = Path(directory) / LIBRARIES[name]
        if path.is_file():
            return {"LD_PRELOAD": str(path)}
    return None


def rnnlab_allocator(name: str) -> str:
    """rnnlab's `allocator=` under allocator setting `name`: only `retain` lets rnnlab set malloc itself."""
    return "retain" if name == "retain" else "system"


# -- summaries ------------------------------------------------------------------------------------------


def ratio_summary(ours: Sequence[float], theirs: Sequence[float]) -> dict:
    """Medians, their ratio, and the per-pair ratios (each pair ran back to back: slow drift cancels)."""
    pairs = [a / b for a, b in zip(ours, theirs)]
    return {"median_ours": round(statistics.median(ours), 1), "median_theirs": round(statistics.median(theirs), 1),
            "ratio": round(statistics.median(ours) / statistics.median(theirs), 4),
            "pair_ratio_median": round(statistics.median(pairs), 4), "pairs": [round(p, 4) for p in pairs]}


def equal_time_points(ours: Sequence[tuple[float, float]], theirs: Sequence[tuple[float, float]]) -> dict:
    """BLEU at every equal wall-clock point of two runs, from (seconds since the process started, BLEU) of each
    run's checkpoints. At each moment either run wrote a checkpoint, each side counts with its latest checkpoint
    at or before it (a run without one yet has no model: BLEU 0), so each side is a step function and comparing
    them at the union of their points compares them everywhere."""
    def at(points: Sequence[tuple[float, float]], moment: float) -> float:
        return max(((s, b) for s, b in points if s <= moment), default=(0.0, 0.0))[1]

    moments = sorted({s for s, _ in [*ours, *theirs]})
    rows = [{"minutes": round(m / 60, 2), "ours": at(ours, m), "theirs": at(theirs, m)} for m in moments]
    return {"points": rows, "ours_at_least_theirs_everywhere": all(r["ours"] >= r["theirs"] for r in rows),
            "worst_margin": round(min(r["ours"] - r["theirs"] for r in rows), 2) if rows else None}
