"""``python -m utils.bench train [--fast]``: train on ``data/train``, score on ``data/test``.

Trains with the same plan as notebook 02 (full mode unless ``--fast``), then evaluates
the held-out test images through the PyTorch Predictor and prints seconds per epoch,
total training time, parameters, mAP@[.5:.95], mAP@.5, count MAE and MAPE, with the CPU
and thread count. Results go to ``artifacts/bench_train.json``; the course's
``artifacts/model.pt`` is left alone unless ``--save`` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from . import machine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench train", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="the fast plan (as COURSE_FAST=1)")
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--size", type=int, help="override the plan's input size")
    parser.add_argument("--model", help="override the model name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="also write artifacts/model.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    from .. import config
    from ..annotations import load_annotations
    from ..dataset import split
    from ..evaluate import evaluate
    from ..synth import ensure_course_data
    from ..train import fit, preset

    ensure_course_data()
    plan = preset(args.fast)
    overrides = {"epochs": args.epochs, "image_size": args.size, "model_name": args.model}
    kwargs = {**plan.kwargs(), **{k: v for k, v in overrides.items() if v is not None}}
    train, val = split(load_annotations(config.train_dir()), val_fraction=0.2, seed=args.seed)
    test = load_annotations(config.test_dir())
    host = machine()
    mode = "fast" if args.fast else "full"
    print(
        f"Training {kwargs['model_name']} at {kwargs['image_size']} px for {kwargs['epochs']} "
        f"epochs ({mode} plan) on {len(train)} images, validating on {len(val)}; "
        f"{host['cpu']}, {host.get('torch_threads')} torch threads."
    )
    started = time.perf_counter()
    result = fit(train, val, seed=args.seed, progress=not args.quiet, **kwargs)
    fit_seconds = time.perf_counter() - started
    t0 = time.perf_counter()
    scores = evaluate(result.predictor(), test)
    eval_seconds = time.perf_counter() - t0
    if args.save:
        result.save(config.checkpoint_path())

    m = result.metrics
    report = {
        "mode": mode,
        "plan": result.plan,
        "parameters": m["parameters"],
        "device": m["device"],
        "seconds_per_epoch": m["seconds_per_epoch"],
        "train_seconds": m["train_seconds"],
        "fit_seconds": round(fit_seconds, 1),
        "best_epoch": result.best_epoch,
        "threshold": result.config.score_threshold,
        "val": {k: m[k] for k in ("val_map", "val_map_50", "val_count_mae") if k in m},
        "test_images": scores["images"],
        "test_map": round(scores["map"], 4),
        "test_map_50": round(scores["map_50"], 4),
        "test_map_75": round(scores["map_75"], 4),
        "test_count_mae": round(scores["count_mae"], 3),
        "test_count_mape": round(scores["count_mape"], 2),
        "test_eval_seconds": round(eval_seconds, 1),
        "machine": host,
    }
    out = config.artifacts_dir() / "bench_train.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(
        f"\nseconds/epoch      {report['seconds_per_epoch']:.2f}\n"
        f"training seconds   {report['train_seconds']:.1f} (fit incl. threshold sweep "
        f"{report['fit_seconds']:.1f})\n"
        f"parameters         {report['parameters']:,}\n"
        f"best epoch         {report['best_epoch']} / {kwargs['epochs']}, counting threshold "
        f"{report['threshold']:.3f}\n"
        f"test images        {report['test_images']}\n"
        f"mAP@[.5:.95]       {report['test_map']:.3f}\n"
        f"mAP@.5             {report['test_map_50']:.3f}\n"
        f"mAP@.75            {report['test_map_75']:.3f}\n"
        f"count MAE          {report['test_count_mae']:.2f} cells\n"
        f"count MAPE         {report['test_count_mape']:.1f} %\n"
        f"machine            {host['cpu']}, {host['cpu_count']} CPUs, "
        f"{host.get('torch_threads')} torch threads, device {report['device']}\n"
        f"wrote {config.display_path(out)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
