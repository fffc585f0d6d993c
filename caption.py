"""Caption images with a trained model: `python caption.py ckpt=<path or MLflow run id> image=photo.jpg`.

Thin by design: Hydra composes conf/caption.yaml; rnnlab.tasks rebuilds the task=captioning checkpoint (network,
vocabulary, how its training images were read) and captions (rnnlab/tasks/captioning.py). input= a folder captions
every image file in it (sorted), input= a text file the images it lists, one path per line. Out: TSV on stdout, a
header `image caption` and one row per image.
"""

import hydra
import torch
from omegaconf import DictConfig

import rnnlab.config  # noqa: F401  (registers the ${project_root:} resolver used by conf/paths)
from rnnlab.cli import load_task, one_line_errors, prediction_images


@hydra.main(version_base="1.3", config_path="conf", config_name="caption")
def main(cfg: DictConfig) -> None:
    from rnnlab.tasks.captioning import CaptioningTask
    from rnnlab.tasks.translation import DECODING_KEYS, check_decoding

    with one_line_errors():  # the user's mistake: one line, no stack trace
        paths = prediction_images(cfg)
        settings = {key: cfg[key] for key in DECODING_KEYS if cfg[key] is not None}  # the others: the checkpoint's
        check_decoding(settings, prefix="")
        task = load_task(CaptioningTask, cfg, **settings)
        if cfg.seed is not None:  # decode=sample draws from torch's global generator
            torch.manual_seed(cfg.seed)
        print("image\tcaption")
        for start in range(0, len(paths), cfg.batch_size):
            chunk = paths[start: start + cfg.batch_size]
            for path, caption in zip(chunk, task.caption(chunk, batch_size=cfg.batch_size)):
                print(f"{path}\t{caption}", flush=True)


if __name__ == "__main__":
    main()
