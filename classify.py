"""Classify texts with a trained model: `python classify.py ckpt=<path or MLflow run id> text="a gorgeous, witty film"`.

Thin by design: Hydra composes conf/classify.yaml; rnnlab.tasks rebuilds the task=classification checkpoint (network,
vocabulary, classes) and classifies. Without text=, texts are read one per line from input= or stdin. Out: TSV on
stdout, a header `text label p(<class>)...` and one row per text (an empty line stays an empty row).
"""

import hydra
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import load_task, one_line_errors, prediction_texts


@hydra.main(version_base="1.3", config_path="conf", config_name="classify")
def main(cfg: DictConfig) -> None:
    from rnnlab.tasks.classification import ClassificationTask

    with one_line_errors():  # the user's mistake: one line, no stack trace
        texts = prediction_texts(cfg, example="a gorgeous, witty film")
        task = load_task(ClassificationTask, cfg)
        print("\t".join(["text", "label", *(f"p({name})" for name in task.classes)]))
        for text, probabilities in zip(texts, task.classify(texts, batch_size=cfg.batch_size)):
            if probabilities is None:
                print(text, flush=True)
                continue
            label = task.classes[max(range(len(probabilities)), key=probabilities.__getitem__)]
            print("\t".join([" ".join(text.split()), str(label), *(f"{p:.4f}" for p in probabilities)]), flush=True)


if __name__ == "__main__":
    main()
