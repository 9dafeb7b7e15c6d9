"""The course's command line: ``python -m utils train | evaluate | count | export | pretrain``.

    python -m utils train --data data/train --out runs/a          # model.pt + metrics.json
    python -m utils evaluate --checkpoint runs/a/model.pt --data data/test
    python -m utils count --checkpoint runs/a/model.pt photos/ --out counts.csv
    python -m utils count --checkpoint model.onnx archive/ --engine ray --out counts.parquet
    python -m utils export --checkpoint runs/a/model.pt --out runs/a/model.onnx

``--data`` takes a VOC or labelme folder, a COCO ``.json`` or a YOLO split (``annotations``);
``train --data`` also a data set's root with its own splits (``cli_data``).
``count`` and ``evaluate`` take any model ``loading.load_predictor`` reads (.pt, .onnx, .xml).
Bad input ends with exit code 1 and one line ``error: ...`` on stderr, never a traceback.
``count`` writes a row for every image, with an ``error`` column for those it could not
read, and then exits 1 if there were any. Files are written atomically (``utils.atomicio``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import atomicio, config
from .cli_data import add_data_options, held_out_set, training_sets
from .cli_pretrain import add_pretrain_command, add_pretrained_option, pretrained_value
from .config import display_path, one_line
from .images import ImageError, load_image
from .processing import ScaleError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# ``count --runtime auto`` checks and times the runtimes on the first photo: about 2 s on a 2-core
# AMD EPYC (30 photos took 5.3 s auto, 5.0 s ONNX Runtime, 3.3 s bf16 named), repaid from ~35 on.
CHOICE_PHOTOS, CHOICE_MIN_PHOTOS = 1, 40
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


def _load_predictor(path: str | Path, tta: bool = False):
    """The model file's predictor; ``tta``: with flip test-time augmentation (``--tta``)."""
    path = Path(path)
    if not path.exists():
        raise CliError(f"model file {display_path(path)} not found")
    if tta and path.suffix.lower() in (".pt", ".pth"):  # the flips are added to the graph
        from .checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        checkpoint.config = replace(checkpoint.config, flip_tta=True)
        return checkpoint.predictor()
    from .loading import load_predictor

    return _with_flips_if_asked(load_predictor(path), path, tta)


def _with_flips_if_asked(predictor, path: Path, tta: bool):
    """``predictor``, or how to get one with flips when ``--tta`` asked (they live in the graph)."""
    if tta and not predictor.config.flip_tta:
        raise CliError(
            f"--tta: {display_path(path)} was exported without flips; pass the .pt checkpoint, "
            "or export it with `python -m utils export --tta`"
        )
    return predictor


def _serving_predictor(
    path: str | Path,
    tta: bool,
    runtime: str | None,
    files: Sequence[Path],
    threshold: float | None = None,
):
    """The plain ``count``'s predictor (``runtime_choice``: the fastest that keeps the count,
    from ``CHOICE_MIN_PHOTOS`` photos on), named on stderr; ``--tta`` + ``.pt``: PyTorch."""
    path = Path(path)
    if not path.exists():
        raise CliError(f"model file {display_path(path)} not found")
    if tta and path.suffix.lower() in (".pt", ".pth"):
        return _load_predictor(path, tta)
    from .runtime_choice import choose_runtime

    photos = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    # fewer photos than repay the measurement: the reference (ONNX Runtime fp32), untimed
    photos = photos[:CHOICE_PHOTOS] if len(photos) >= CHOICE_MIN_PHOTOS else []
    choice = choose_runtime(path, photos, runtime, threshold=threshold)
    predictor = _with_flips_if_asked(choice.predictor, path, tta)
    if choice.worth_saying:
        print(f"runtime: {choice.describe()}", file=sys.stderr)
    return predictor


def cmd_train(args: argparse.Namespace) -> int:
    from .model import is_heatmap_model
    from .train import fit, preset

    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise CliError(f"--minutes must be a positive number, got {args.minutes}")
    train, val, about = training_sets(args)
    plan = preset(args.fast or config.fast_mode(verbose=False))
    (out := Path(args.out)).mkdir(parents=True, exist_ok=True)
    held = f"validating on {len(val)}" if val else "no validation, threshold chosen on them"
    print(f"Training on {len(train)} images, {held} ({about}).")
    overrides = {
        "model_name": args.model,
        "image_size": args.size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v})
    if args.minutes is not None:  # the clock decides; --epochs, if given, is the most it may do
        plan = replace(plan, minutes=args.minutes, epochs=args.epochs or 1000)  # 1000: a guard
    elif args.epochs:  # exactly these epochs, however long they take
        plan = replace(plan, minutes=None)
    if not is_heatmap_model(plan.model_name) and args.model:
        plan = replace(plan, crop_size=None, repeats=1)  # torchvision detectors resize crops
    result = fit(
        train,
        val,
        plan,
        seed=args.seed,
        pretrained=pretrained_value(args.pretrained),
        progress=not args.quiet,
    )
    model_path = result.save(out / "model.pt")
    metrics = {**result.metrics, "sweep": result.sweep, "history": result.history}
    metrics_path = atomicio.write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    m = result.metrics
    if "budget" in m:
        b = m["budget"]
        print(
            f"Budget {b['minutes']:g} min: {b['epochs']} epochs of {b['steps_per_epoch']} steps "
            f"({b['seconds_per_step']:.2f} s a step, limited by {b['limited_by']})."
        )
    scores = "No validation: counting threshold"
    if "val_map" in m:
        scores = f"Validation: mAP@[.5:.95] {m['val_map']:.3f}, mAP@.5 {m['val_map_50']:.3f}, "
        scores += f"count MAE {m['val_count_mae']:.2f} at threshold"
    print(
        f"{scores} {m['threshold']:.2f} (weights of epoch {result.kept_epoch}/{m['epochs']}, "
        f"{m['train_seconds']:.0f} s)."
    )
    print(f"Wrote {display_path(model_path)} and {display_path(metrics_path)}.")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, summary

    predictor = _load_predictor(args.checkpoint, args.tta)
    aset = _with_model_classes(held_out_set(args.data), predictor.config.class_names, args)
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


def _with_model_classes(aset, model_classes: Sequence[str], args: argparse.Namespace):
    """The data with the model's class order; refuses classes the model does not know.

    mAP matches predicted class ``i`` with labelled class ``i``: a renamed, extra or
    reordered class would give numbers that look fine and mean nothing.
    """
    from .annotations import AnnotationSet

    model_classes = tuple(model_classes)
    unknown = [name for name in aset.class_names if name not in model_classes]
    if unknown:
        raise CliError(
            f"{display_path(args.data)} labels class(es) {unknown} that "
            f"{display_path(args.checkpoint)} does not detect (it knows {list(model_classes)}); "
            "rename the labels to the model's class names or evaluate a model trained on them"
        )
    unused = [name for name in model_classes if name not in aset.class_names]
    if unused and aset.num_boxes:
        print(
            f"note: the model also detects {unused}, which {display_path(args.data)} never "
            "labels; mAP covers the labelled classes only",
            file=sys.stderr,
        )
    return AnnotationSet(model_classes, aset.images)


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
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise CliError(f"--scale must be a positive number, got {args.scale}")
    if args.engine is not None or args.prelabels or args.address:
        if args.runtime:
            raise CliError("--runtime chooses the plain count's runtime; drop --engine/--prelabels")
        if args.tta:
            raise CliError(
                "--tta counts in one process only; for --engine/--prelabels/--address export "
                "the model with `python -m utils export --tta` and pass that .onnx"
            )
        return cmd_count_batch(args)
    if args.threshold is not None and not 0 <= args.threshold <= 1:  # also refuses NaN
        raise CliError(f"--threshold must be between 0 and 1, got {args.threshold}")
    files = image_files(args.images)
    predictor = _serving_predictor(args.checkpoint, args.tta, args.runtime, files, args.threshold)
    threshold = predictor.config.score_threshold if args.threshold is None else args.threshold
    rows = [count_one(predictor, path, threshold, args.scale) for path in files]
    names = tuple(predictor.config.class_names)
    per_class = [f"count_{name}" for name in names] if len(names) > 1 else []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "count", *per_class, "error"])  # one count per class if several
    writer.writerows(rows)
    if args.out:
        out = atomicio.write_text(args.out, text.getvalue())
        total = sum(row[1] for row in rows if row[1] != "")
        by_class = [sum(row[2 + k] for row in rows if row[1] != "") for k in range(len(per_class))]
        shown = ", ".join(f"{n} {name}" for name, n in zip(names, by_class))
        print(
            f"Counted {total} cells{f' ({shown})' if shown else ''} in {len(rows)} images "
            f"(threshold {threshold:.2f}); wrote {display_path(out)}."
        )
    else:
        sys.stdout.write(text.getvalue())
    _fail_on_errors([(row[0], row[-1]) for row in rows])
    return 0


def _fail_on_errors(rows: Sequence[tuple[str, str]]) -> None:
    failed = [Path(name).name for name, error in rows if error]
    if failed:
        shown = ", ".join(failed[:3]) + (", ..." if len(failed) > 3 else "")
        raise CliError(
            f"{len(failed)} of {len(rows)} images could not be counted ({shown}); "
            "see the error column"
        )


def cmd_count_batch(args: argparse.Namespace) -> int:
    """``count --engine plain|ray``: the archive job of ``utils.batch`` (resume, Parquet,
    mean score and seconds per image, pre-labels)."""
    from . import batch

    engine = args.engine or "plain"
    model = Path(args.checkpoint)
    if not model.exists():
        raise CliError(f"model file {display_path(model)} not found")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CliError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.address and engine != "ray":
        raise CliError("--address joins a Ray cluster: add --engine ray")
    if args.prelabels in ("coco", "labelstudio") and not args.prelabels_out:
        raise CliError(f"--prelabels {args.prelabels} needs --prelabels-out FILE.json")
    if args.out:
        batch.output_format(args.out)
    files = image_files(args.images)
    start = time.perf_counter()
    new = batch.run(
        model,
        files,
        out=args.out,
        threshold=args.threshold,
        engine=engine,
        workers=args.workers,
        batch_size=args.batch_size,
        address=args.address,
        boxes=bool(args.prelabels),
        progress=not args.quiet,
        scale=args.scale,
    )
    seconds = time.perf_counter() - start
    if args.prelabels:
        from .prelabels import write_prelabels

        names = batch.model_config(model).class_names
        print(write_prelabels(new, names, args.prelabels, args.prelabels_out))
    if args.out:
        rows = batch.read_table(args.out)
        s = batch.summary(rows)
        by_class = ", ".join(f"{n} {k}" for k, n in s.get("cells_by_class", {}).items())
        print(
            f"Counted {len(new)} new image(s) in {seconds:.1f} s with the {engine} engine "
            f"({len(files) - len(new)} already in {display_path(args.out)}); "
            f"{s['cells']} cells{f' ({by_class})' if by_class else ''} in {s['counted']} "
            f"images, {s['errors']} error(s)."
        )
    else:
        rows = new
        names = batch.model_config(model).class_names
        sys.stdout.write(batch.csv_text(rows, batch.columns_for(names)))
    _fail_on_errors([(r["file"], r["error"]) for r in rows])
    return 0


def count_one(
    predictor, path: Path, threshold: float, scale: float | None = None
) -> tuple[str | int, ...]:
    """One CSV row (file, count, then one count per class if the model has several, error);
    an unreadable image gets its error instead of stopping the whole run.

    A photo that looks taken at another magnification than the training photos is counted
    and its note (with the scale to use) goes to stderr, so the CSV stays a table.
    """

    try:
        image = load_image(path).image
        found = predictor.predict(image, threshold, scale)
    except (ImageError, ScaleError, OSError) as error:  # not an image, a thumbnail, unreadable
        names = predictor.config.class_names
        return path.as_posix(), "", *([""] * len(names) if len(names) > 1 else []), one_line(error)
    if found.note:
        print(f"{path.name}: {found.note}", file=sys.stderr)
    counts = found.counts_by_class()
    per_class = [counts[n] for n in found.class_names] if len(found.class_names) > 1 else []
    return path.as_posix(), found.count, *per_class, ""


def cmd_export(args: argparse.Namespace) -> int:
    """A checkpoint to ONNX with the inference config in its metadata (what the app reads)."""
    from .export import export_onnx

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise CliError(f"checkpoint {display_path(checkpoint)} not found")
    out = Path(args.out) if args.out else checkpoint.with_suffix(".onnx")
    if args.tta:
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint)
        path = export_onnx(loaded, replace(loaded.config, flip_tta=True), path=out)
    else:
        path = export_onnx(checkpoint, path=out)
    print(f"Wrote {display_path(path)}.")
    return 0


# ----------------------------------------------------------------------------- parser


TTA_HELP = "average each tile with its 3 flips (test-time augmentation): more accurate, 4x slower"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils",
        description="Train, evaluate and run the microalgae cell counter.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a detector; writes model.pt and metrics.json")
    add_data_options(train)
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument(
        "--epochs",
        type=int,
        help="exactly this many epochs (default: the plan's 112, or 30 with --fast, cut to what "
        "fits in its minutes); with --minutes, the most it may do",
    )
    train.add_argument(
        "--minutes",
        type=float,
        help="wall-clock budget of training (default 10; none with --fast): the steps that fit "
        "are measured on the first ones",
    )
    train.add_argument("--size", type=int, help="input size in pixels (multiple of 32)")
    train.add_argument(
        "--model",
        help="centernet_resnet18_s2 (default), centernet_resnet18 (its "
        "stride-4 heatmap), fcos_resnet18 or retinanet_resnet18",
    )
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--fast", action="store_true", help="the short plan (as COURSE_FAST=1)")
    add_pretrained_option(train)
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="mAP and count error on labelled images")
    evaluate.add_argument("--checkpoint", required=True, help="model.pt (or .onnx / .xml)")
    evaluate.add_argument(
        "--data",
        required=True,
        help="VOC/labelme/YOLO folder or COCO .json, or a data set's root "
        "(or .zip): its test split",
    )
    evaluate.add_argument("--threshold", type=float, help="counting threshold (default: stored)")
    evaluate.add_argument("--tta", action="store_true", help=TTA_HELP)
    evaluate.set_defaults(func=cmd_evaluate)

    count = sub.add_parser(
        "count",
        help="count cells in images; prints CSV file,count,error (see --engine), with a "
        "count_<class> column per class after count when the model has several classes",
    )
    count.add_argument("--checkpoint", required=True, help="model.pt (or .onnx / .xml)")
    count.add_argument("images", nargs="+", help="image files and/or folders")
    count.add_argument("--threshold", type=float, help="counting threshold (default: stored)")
    count.add_argument("--tta", action="store_true", help=TTA_HELP)
    count.add_argument(
        "--runtime",
        choices=config.RUNTIME_CHOICES,
        help=f"auto (default, or {config.RUNTIME_ENV}): the fastest runtime that keeps the count "
        f"of the first photo, measured from {CHOICE_MIN_PHOTOS} photos on and named on stderr; "
        "another name forces it (plain count only)",
    )
    count.add_argument(
        "--scale",
        type=float,
        help="working pixels per photo pixel (default: the model's own, chosen from its training "
        "photos); for photos taken at another magnification, as a note on such a photo suggests",
    )
    count.add_argument(
        "--out",
        help="write the CSV (or with --engine: .csv or .parquet) here instead of printing it",
    )
    count.add_argument(
        "--engine",
        choices=("plain", "ray"),
        help="archive job: columns file,count[,count_<class>...],mean_score,seconds,error, skips "
        "files already in --out; ray = Ray Data actor pool (pip install '.[scale]')",
    )
    count.add_argument("--workers", type=int, default=2, help="Ray actors (one CPU each)")
    count.add_argument("--batch-size", type=int, default=8, help="images per Ray batch")
    count.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    count.add_argument(
        "--prelabels",
        choices=("voc", "coco", "labelstudio", "yolo"),
        help="also write the boxes for review: voc = labelImg XML next to each image, yolo = a "
        ".txt there, coco = one COCO JSON, labelstudio = Label Studio tasks (--prelabels-out)",
    )
    count.add_argument("--prelabels-out", help="the JSON file for --prelabels coco|labelstudio")
    count.add_argument("--quiet", action="store_true", help="no progress bar")
    count.set_defaults(func=cmd_count)

    export = sub.add_parser("export", help="export a checkpoint to ONNX (for the app and the Hub)")
    export.add_argument("--checkpoint", required=True, help="model.pt")
    export.add_argument("--out", help="the .onnx file (default: beside the checkpoint)")
    export.add_argument("--tta", action="store_true", help=TTA_HELP)
    export.set_defaults(func=cmd_export)
    add_pretrain_command(sub)
    return parser


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
