"""The course's command line: ``python -m utils train | evaluate | count``.

    python -m utils train --data data/train --out runs/a          # model.pt + metrics.json
    python -m utils evaluate --checkpoint runs/a/model.pt --data data/test
    python -m utils count --checkpoint runs/a/model.pt photos/ --out counts.csv

``--data`` takes a Pascal VOC folder or a COCO ``.json``. ``count`` and ``evaluate``
accept any model file that ``runtime.load_predictor`` reads (``.pt``, ``.onnx``, ``.xml``).
Bad input ends with exit code 1 and one line ``error: ...`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import display_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
HEADLINE = (
    "map",
    "map_50",
    "map_75",
    "count_mae",
    "count_mape",
    "count_bias",
    "threshold",
    "images",
)


class CliError(ValueError):
    """A problem with what was asked for on the command line."""


# ----------------------------------------------------------------------------- commands


def _load_predictor(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise CliError(f"model file {display_path(path)} not found")
    from .runtime import load_predictor

    return load_predictor(path)


def _pretrained(value: str) -> bool | str:
    return {"auto": "auto", "yes": True, "no": False}[value]


def cmd_train(args: argparse.Namespace) -> int:
    from . import config
    from .annotations import load_annotations
    from .dataset import split
    from .train import fit, preset

    aset = load_annotations(args.data)
    if len(aset) < 2:
        raise CliError(f"{display_path(args.data)} holds {len(aset)} image(s); need at least 2")
    plan = preset(args.fast or config.fast_mode(verbose=False))
    train, val = split(aset, val_fraction=args.val_fraction, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Training on {len(train)} images, validating on {len(val)} ({aset.summary()}).")
    result = fit(
        train,
        val,
        model_name=args.model or plan.model_name,
        image_size=args.size or plan.image_size,
        epochs=args.epochs or plan.epochs,
        batch_size=args.batch_size or plan.batch_size,
        lr=args.lr or plan.lr,
        eval_every=plan.eval_every,
        seed=args.seed,
        pretrained=_pretrained(args.pretrained),
        progress=not args.quiet,
    )
    model_path = result.save(out / "model.pt")
    metrics = {**result.metrics, "sweep": result.sweep, "history": result.history}
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    m = result.metrics
    print(
        f"Validation: mAP@[.5:.95] {m['val_map']:.3f}, mAP@.5 {m['val_map_50']:.3f}, "
        f"count MAE {m['val_count_mae']:.2f} at threshold {m['threshold']:.2f} "
        f"(best epoch {result.best_epoch}/{m['epochs']}, {m['train_seconds']:.0f} s)."
    )
    print(f"Wrote {display_path(model_path)} and {display_path(metrics_path)}.")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .annotations import load_annotations
    from .evaluate import evaluate, summary

    predictor = _load_predictor(args.checkpoint)
    aset = load_annotations(args.data)
    metrics = evaluate(predictor, aset, threshold=args.threshold)
    print(
        json.dumps(
            {
                k: round(metrics[k], 4) if isinstance(metrics[k], float) else metrics[k]
                for k in HEADLINE
            }
        )
    )
    print(summary(metrics))
    return 0


def image_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named on the command line, plus the images inside named folders (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise CliError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {display_path(path)}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CliError(f"{item} not found")
    return files


def cmd_count(args: argparse.Namespace) -> int:
    from .images import load_image

    predictor = _load_predictor(args.checkpoint)
    files = image_files(args.images)
    threshold = predictor.config.score_threshold if args.threshold is None else args.threshold
    if not 0 <= threshold <= 1:
        raise CliError(f"--threshold must be between 0 and 1, got {threshold}")
    rows: list[tuple[str, int]] = []
    for path in files:
        image = load_image(path).image
        rows.append((path.as_posix(), predictor.predict(image, threshold).count))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "count"])
    writer.writerows(rows)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text.getvalue(), encoding="utf-8")
        total = sum(count for _, count in rows)
        print(
            f"Counted {total} cells in {len(rows)} images (threshold {threshold:.2f}); "
            f"wrote {display_path(out)}."
        )
    else:
        sys.stdout.write(text.getvalue())
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils",
        description="Train, evaluate and run the microalgae cell counter.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a detector; writes model.pt and metrics.json")
    train.add_argument("--data", required=True, help="Pascal VOC folder or COCO .json")
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--epochs", type=int, help="default: the full (or --fast) plan")
    train.add_argument("--size", type=int, help="input size in pixels (multiple of 32)")
    train.add_argument("--model", help="fcos_resnet18 (default) or retinanet_resnet18")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--fast", action="store_true", help="the short plan (as COURSE_FAST=1)")
    train.add_argument(
        "--pretrained",
        choices=("auto", "yes", "no"),
        default="auto",
        help="ImageNet backbone weights: auto = if downloadable",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="mAP and count error on labelled images")
    evaluate.add_argument("--checkpoint", required=True, help="model.pt (or .onnx / .xml)")
    evaluate.add_argument("--data", required=True, help="Pascal VOC folder or COCO .json")
    evaluate.add_argument("--threshold", type=float, help="counting threshold (default: stored)")
    evaluate.set_defaults(func=cmd_evaluate)

    count = sub.add_parser("count", help="count cells in images; prints CSV file,count")
    count.add_argument("--checkpoint", required=True, help="model.pt (or .onnx / .xml)")
    count.add_argument("images", nargs="+", help="image files and/or folders")
    count.add_argument("--threshold", type=float, help="counting threshold (default: stored)")
    count.add_argument("--out", help="write the CSV here instead of printing it")
    count.set_defaults(func=cmd_count)
    return parser


def one_line(error: BaseException) -> str:
    """An error message squeezed onto one line (annotation errors list problems per line)."""
    if isinstance(error, OSError) and error.filename:  # never show this machine's full paths
        return f"{error.strerror or type(error).__name__}: {Path(error.filename).name}"
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ArithmeticError, RuntimeError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
