"""Tag sentences with a trained model: `python tag.py ckpt=<path or MLflow run id> text="The old man the boats ."`.

Thin by design: Hydra composes conf/tag.yaml; rnnlab.tasks rebuilds the task=tagging checkpoint (network or HMM,
vocabulary, tags) and tags. Without text=, sentences are read one per line from input= or stdin. A sentence's words
are what whitespace separates, as in the tagged corpora it was trained on (give "boats ." for "boats."). Out, on
stdout: `word/TAG` pairs, one sentence per line (an empty line stays empty), or with format=conllu CoNLL-U. A tagger
trained with task.intent also prints each sentence's intent: first on its line, then a tab (pairs), or as an
`# intent = ` comment (CoNLL-U).
"""

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import load_task, one_line_errors, prediction_texts
from rnnlab.errors import ConfigError

FORMATS = ("pairs", "conllu")


@hydra.main(version_base="1.3", config_path="conf", config_name="tag")
def main(cfg: DictConfig) -> None:
    from rnnlab.data.conll import conllu_sentence
    from rnnlab.tasks.tagging import TaggingTask

    with one_line_errors():  # the user's mistake: one line, no stack trace
        if cfg.format not in FORMATS:
            raise ConfigError(f"format={cfg.format} is invalid: choose pairs (word/TAG) or conllu")
        lines = prediction_texts(cfg, example="The old man the boats .")
        task = load_task(TaggingTask, cfg)
        sentences = [line.split() for line in lines]
        tagset = (task.hparams.tokenizer or {}).get("tagset") or "upos"  # the CoNLL-U column it was trained on
        tagged, intents = task.tag_and_classify(sentences, batch_size=cfg.batch_size)
        for number, (words, tags) in enumerate(zip(sentences, tagged), 1):
            intent = None if intents is None else intents[number - 1]
            if cfg.format == "pairs":
                pairs = " ".join(f"{word}/{tag}" for word, tag in zip(words, tags))
                print(pairs if intent is None else f"{intent}\t{pairs}" if words else "", flush=True)
            elif words:  # CoNLL-U has no empty sentence; sent_id keeps the input's line number
                print(conllu_sentence(words, tags, tagset, sent_id=number, intent=intent), end="", flush=True)


if __name__ == "__main__":
    main()
