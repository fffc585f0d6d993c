"""Writes the peers' inputs from ../shared/data/multi30k (idempotent; seconds):

  <out>/bpe/{train,val,test}.{de,en}   every sentence as rnnlab's joint 8k BPE pieces (JoeyNMT reads these)
  <out>/bpe/vocab.txt                  the 8000 pieces in rnnlab's id order (JoeyNMT's voc_file for both sides)
  <out>/lm/{train,valid,test}.txt      the English side, words and punctuation split, unseen val/test words <unk>
                                       (pytorch/examples word_language_model's layout; rnnlab reads it as data=text)
  <out>/lm_smoke/...                   the same from the first 2000/200/200 lines: an epoch in seconds (smoke runs)

    python experiments/peers/prepare.py [--data ../shared/data/multi30k] [--out experiments/peers/runs/data]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import SPLIT_FILES, TRANSLATION, lm_corpus, pieces_line  # noqa: E402

from rnnlab.data.multi30k import Multi30kDataModule  # noqa: E402
from rnnlab.data.translation import read_lines  # noqa: E402


def write_bpe(data: Path, out: Path, cache: Path) -> dict:
    """The pieces files and vocabulary; the same Subwords as `train.py experiment=multi30k_best` trains."""
    module = Multi30kDataModule(root=str(data), download=False, tokenizer="bpe", vocab_size=TRANSLATION["vocab_size"],
                                joint_vocab=True, min_frequency=2, max_length=TRANSLATION["max_length"],
                                cache_dir=str(cache), seed=TRANSLATION["seed"])
    module.setup()
    tokenizer = module.subwords.source  # joint: the same object for both sides
    out.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise ValueError("the vocabulary's ids are not 0..V-1")
    (out / "vocab.txt").write_text("".join(f"{piece}\n" for piece, _ in vocab), encoding="utf-8")
    counts = {"vocab": len(vocab)}
    for split, stem in SPLIT_FILES.items():
        for lang in ("de", "en"):
            lines = read_lines(data / f"{stem}.{lang}.gz")
            encoded = tokenizer.encode_batch(lines)
            (out / f"{split}.{lang}").write_text("".join(pieces_line(e.tokens) + "\n" for e in encoded),
                                                 encoding="utf-8")
            counts[f"{split}.{lang}"] = sum(len(e.tokens) for e in encoded)
    return counts


def write_lm(data: Path, out: Path, train_lines: int | None = None, eval_lines: int | None = None) -> dict:
    splits = lm_corpus(read_lines(data / "train.en.gz")[:train_lines],
                       {"valid": read_lines(data / "val.en.gz")[:eval_lines],
                        "test": read_lines(data / "test_2016_flickr.en.gz")[:eval_lines]})
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in splits.items():
        (out / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return {name: sum(len(line.split()) + 1 for line in lines) for name, lines in splits.items()}  # + <eos>


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1].parent / "shared/data/multi30k")
    parser.add_argument("--out", type=Path, default=HERE / "runs/data")
    args = parser.parse_args()
    if not (args.data / "train.de.gz").is_file():
        sys.exit(f"prepare.py: no Multi30k in {args.data} (train.de.gz missing); pass --data DIR")
    stamp = args.out / "prepared.json"
    if stamp.is_file():
        print(stamp.read_text(encoding="utf-8").strip())
        return
    summary = {"bpe": write_bpe(args.data, args.out / "bpe", args.out / "cache"),
               "lm_tokens": write_lm(args.data, args.out / "lm"),
               "lm_smoke_tokens": write_lm(args.data, args.out / "lm_smoke", 2000, 200)}
    stamp.write_text(json.dumps(summary) + "\n", encoding="utf-8")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
