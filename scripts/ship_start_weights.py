"""Write the start the package ships (utils/weights/scenes_start.pt) from a pretraining run.

    python -m utils pretrain --out runs/pretrain/model.pt     # ~24 min on 2 cores
    python scripts/ship_start_weights.py runs/pretrain/model.pt

Only the tensors a new run copies (trunk, FPN, box head) are kept, in float16: 1.6 MB
instead of the checkpoint's 3.4 MB. Rerun both lines whenever the heatmap counter's layers
change; tests/test_scenes_start.py fails until then (its shapes no longer fit the model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.config import display_path  # noqa: E402
from utils.warmstart import SCENES_START, write_start  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a course checkpoint from `python -m utils pretrain`")
    parser.add_argument("--out", default=str(SCENES_START), help="where to write the start")
    args = parser.parse_args(argv)
    out = write_start(args.checkpoint, args.out)
    print(f"Wrote {display_path(out)} ({out.stat().st_size / 1e6:.2f} MB).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
