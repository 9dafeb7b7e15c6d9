"""``python -m utils.bench real --train DIR --test DIR [--seeds 0 1] [--minutes N]``: real photos.

Runs the default command line, ``python -m utils train --data DIR --out ...`` (its plan, its
clock, its validation split), once per seed, then scores the held-out ``--test`` folder through
the saved checkpoint, as a learner would: training time, mAP@[.5:.95], mAP@.5, mAP@.75, each
class's AP and each class's count error (MAE; MAPE only over photos with at least
``evaluate.MAPE_MIN_CELLS`` cells of that class; the error of the class's total), and the
headline again as ``count --tta`` counts (flip test-time augmentation). It ends with the goals
of issue 19, met or not (on the default; the ``--tta`` figure beside each). Any labelled folder
works (Pascal VOC, labelme, COCO, a YOLO split), and ``--train`` also a data set's root with its
own ``train/`` and ``valid/`` (``--val`` names a validation folder); ``docs/real_data.md`` has
the figures measured on BCCD.

Results go to ``artifacts/bench_real.json``; the models to ``artifacts/bench_real/seed_N``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import config
from . import machine, write_report

# (name, key, threshold): mAP@.5 of pretrained YOLOv8n on BCCD, a mAP, then NBCDC-YOLOv8's.
GOALS = (
    ("mAP@.5 >= 0.90 (pretrained YOLOv8n)", "map_50", 0.90),
    ("mAP@[.5:.95] >= 0.60", "map", 0.60),
    ("mAP@.5 >= 0.947 (NBCDC-YOLOv8)", "map_50", 0.947),
)
GOAL_MINUTES = 10.0


def train_cli(
    data: Path,
    out: Path,
    seed: int,
    minutes: float | None,
    quiet: bool,
    pretrained: str | None = None,
    val_fraction: float | None = None,
    val: Path | None = None,
) -> float:
    """``python -m utils train`` as a learner types it; its wall-clock seconds."""
    from .. import cli

    argv = ["train", "--data", str(data), "--out", str(out), "--seed", str(seed)]
    if minutes is not None:
        argv += ["--minutes", str(minutes)]
    if pretrained is not None:
        argv += ["--pretrained", pretrained]
    if val_fraction is not None:
        argv += ["--val-fraction", str(val_fraction)]
    if val is not None:
        argv += ["--val", str(val)]
    if quiet:
        argv.append("--quiet")
    started = time.perf_counter()
    code = cli.main(argv)
    if code != 0:
        raise SystemExit(code)
    return time.perf_counter() - started


def score(model: Path, test, flips: bool = False) -> dict[str, Any]:
    """Held-out figures of one saved model, through the same predictor ``count`` uses.

    ``flips``: as ``count --tta`` counts (each tile averaged with its three flips)."""
    from dataclasses import replace

    from ..checkpoint import load_checkpoint
    from ..evaluate import evaluate, headline

    checkpoint = load_checkpoint(model)
    checkpoint.config = replace(checkpoint.config, flip_tta=flips)
    metrics = evaluate(checkpoint.predictor(), test)
    figures = headline(metrics)
    return {
        "test_images": figures.pop("images"),
        "threshold": metrics["threshold"],
        **figures,
        "ap_per_class": metrics["ap_per_class"],
        "count_per_class": metrics.get("per_class", {}),
    }


def format_run(row: dict[str, Any]) -> str:
    """One seed: the headline, then a line per class."""
    counts = row["count_per_class"]
    relative = f"({row['count_mape']:.1f} %)" if len(counts) <= 1 else "(all classes)"
    lines = [
        f"seed {row['seed']}: {row['cli_seconds']:.0f} s (train {row['train_seconds']:.0f} s, "
        f"{row['epochs']} epochs), mAP {row['map']:.3f}, mAP@.5 {row['map_50']:.3f}, "
        f"mAP@.75 {row['map_75']:.3f}, count MAE {row['count_mae']:.2f} "
        f"{relative} at threshold {row['threshold']:.2f}"
    ]
    for name, ap in row["ap_per_class"].items():
        c = counts.get(name)
        text = f"  {name:<12} AP {ap['ap']:.3f}  AP50 {ap['ap_50']:.3f}  AP75 {ap['ap_75']:.3f}"
        if c:
            mape = (
                f"{c['mape']:.1f} % ({c['mape_photos']} photos)" if c["mape"] is not None else "-"
            )
            total = f"{c['total_error_pct']:.1f} %" if c["total_error_pct"] is not None else "-"
            text += f"  count MAE {c['mae']:.2f}  MAPE {mape}  total error {total}"
        lines.append(text)
    if row.get("tta"):
        tta = row["tta"]
        lines.append(
            f"  with --tta (4 views, 4x the time): mAP {tta['map']:.3f}, mAP@.5 "
            f"{tta['map_50']:.3f}, mAP@.75 {tta['map_75']:.3f}, count MAE {tta['count_mae']:.2f}"
        )
    return "\n".join(lines)


def goals(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The issue's goals on the mean over seeds, each met or not."""
    mean = {key: statistics.fmean(r[key] for r in rows) for key in ("map", "map_50")}
    flipped = [r["tta"] for r in rows if r.get("tta")]
    tta = {k: statistics.fmean(r[k] for r in flipped) for k in mean} if flipped else None
    minutes = max(r["cli_seconds"] for r in rows) / 60
    lines = []
    for name, key, threshold in GOALS:
        met = mean[key] >= threshold and minutes <= GOAL_MINUTES
        also = ""
        if tta:
            also = f" (with --tta: {tta[key]:.3f}, {'met' if tta[key] >= threshold else 'not met'})"
        lines.append(
            f"{'met    ' if met else 'NOT met'}  {name} within {GOAL_MINUTES:g} min: "
            f"{mean[key]:.3f} in {minutes:.1f} min{also}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench real", description=__doc__)
    parser.add_argument(
        "--train",
        required=True,
        help="labelled folder (VOC, labelme, YOLO split) or COCO .json, or a data set's root "
        "with train/ and valid/ (train's --data)",
    )
    parser.add_argument("--val", help="train's --val: a labelled folder to validate on")
    parser.add_argument(
        "--test", required=True, help="held-out labelled folder or .json, or a data set's root"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--minutes", type=float, help="train's --minutes (default: its own)")
    parser.add_argument(
        "--pretrained", help="train's --pretrained, e.g. scenes (default: its own, auto)"
    )
    parser.add_argument(
        "--val-fraction", type=float, help="train's --val-fraction, e.g. 0 (default: its own, 0.2)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    import json

    from ..cli_data import held_out_set

    test = held_out_set(args.test)  # a data set's root: its test split
    host = machine()
    print(
        f"real photos: train {config.display_path(args.train)}, test {len(test)} photos "
        f"({test.summary()}); seeds {args.seeds}; {host['cpu']}, "
        f"{host.get('torch_threads')} torch threads"
    )
    root = config.artifacts_dir() / "bench_real"
    rows = []
    for seed in args.seeds:
        out = root / f"seed_{seed}"
        seconds = train_cli(
            Path(args.train),
            out,
            seed,
            args.minutes,
            args.quiet,
            args.pretrained,
            args.val_fraction,
            Path(args.val) if args.val else None,
        )
        trained = json.loads((out / "metrics.json").read_text())
        row = {
            "seed": seed,
            "cli_seconds": round(seconds, 1),
            "train_seconds": trained["train_seconds"],
            "epochs": trained["epochs"],
            "budget": trained.get("budget"),
            "precision": trained.get("precision"),
            **score(out / "model.pt", test),
        }
        flipped = score(out / "model.pt", test, flips=True)
        row["tta"] = {k: flipped[k] for k in ("map", "map_50", "map_75", "count_mae")}
        rows.append(row)
        print(format_run(row), flush=True)
    report = {"train": config.display_path(args.train), "test": config.display_path(args.test)}
    report.update(minutes=args.minutes, pretrained=args.pretrained, val_fraction=args.val_fraction)
    report["val"] = config.display_path(args.val) if args.val else None
    report.update(machine=host, runs=rows)
    report["goals"] = goals(rows)
    print("\ngoals (mean over seeds; time: the slowest run's whole train command):")
    print("\n".join(report["goals"]))
    path = config.artifacts_dir() / "bench_real.json"
    write_report(path, report)
    print(f"wrote {config.display_path(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
