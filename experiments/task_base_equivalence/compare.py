"""Compare the final metrics (metrics.json) of the same runs made by two versions of the code: timings aside, every
metric must be equal to 1e-6 (relative). Prints one line per run; exits 1 when any differs."""

import json
import sys
from pathlib import Path

TIMED = {"fit_seconds", "fit_cpu_seconds", "train/tokens_per_s"}


def main(before: Path, after: Path) -> int:
    failed = 0
    for run in sorted(path.name for path in before.iterdir() if (path / "metrics.json").is_file()):
        a = json.loads((before / run / "metrics.json").read_text())
        b = json.loads((after / run / "metrics.json").read_text())
        keys = sorted((set(a) | set(b)) - TIMED)
        missing = [k for k in keys if k not in a or k not in b]
        differ = [k for k in keys if k in a and k in b and abs(a[k] - b[k]) > 1e-6 * max(1.0, abs(a[k]))]
        exact = sum(1 for k in keys if k in a and k in b and a[k] == b[k])
        print(f"{run:12s} {len(keys):3d} metrics  bitwise equal {exact:3d}  differ {differ or '-'}  "
              f"only on one side {missing or '-'}")
        failed += bool(differ or missing)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
