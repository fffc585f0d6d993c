"""JoeyNMT's side of the decoding measurement; run with the peer's Python (experiments/peers/.venv-joeynmt).

Loads the model of a config as `python -m joeynmt test` does (best.ckpt in its model_dir, else the latest), decodes
the config's test set with its `testing` settings (beam 5), times the decoding alone, writes the hypotheses (subword
pieces; measure.py detokenizes and scores them beside rnnlab's) and prints one JSON line.

    .venv-joeynmt/bin/python experiments/peers/joeynmt_decode.py CONFIG HYPOTHESES_OUT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from joeynmt.config import load_config, parse_global_args
from joeynmt.prediction import predict, prepare


def main() -> None:
    config, output = Path(sys.argv[1]), Path(sys.argv[2])
    args = parse_global_args(load_config(config), rank=0, mode="test")
    model, _, _, test_data = prepare(args, rank=0, mode="test")
    wall, cpu = time.perf_counter(), time.process_time()
    _, _, hypotheses, _, _, _ = predict(model=model, data=test_data, device=args.device, n_gpu=args.n_gpu,
                                        compute_loss=False, normalization=args.train.normalization,
                                        num_workers=args.num_workers, args=args.test, autocast=args.autocast)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    output.write_text("".join(f"{h}\n" for h in hypotheses), encoding="utf-8")
    print(json.dumps({"sentences_per_s": round(len(hypotheses) / wall, 2),
                      "sentences_per_cpu_s": round(len(hypotheses) / cpu, 2), "sentences": len(hypotheses),
                      "seconds": round(wall, 2)}), flush=True)


if __name__ == "__main__":
    main()
