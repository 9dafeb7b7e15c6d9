"""``python -m utils.bench train [--fast] [--seeds 0 1 2] [--compare]``: train, score on ``data/test``.

Trains with the same plan as notebook 02 (full mode unless ``--fast``) once per seed (the seed
picks the validation split, the initial weights and the augmentations), evaluates the held-out
test images through the PyTorch Predictor and prints, per seed and as mean / worst: training
seconds, mAP@[.5:.95], mAP@.5, count MAE and MAPE, with the CPU and thread count.

``--compare`` trains each candidate detector in the same wall-clock budget (the plan's, or
``--budget`` seconds): each candidate's seconds per step are measured first and its epochs
set to fill the budget, so the table compares what a learner gets in the same minutes.

``--highres [SIZE]`` does the same on full-resolution photos: the same 17 + 30 scenes drawn
at 2,800 px (``synth.ensure_highres_data``, generated on the first run), trained and counted
at the working scale chosen from their boxes, then times a 2,800 px photo on each runtime
(``bench/highres.py``). ``--cell-size`` overrides the plan's target cell size.

Results go to ``artifacts/bench_train.json`` (``bench_train_highres.json``); the course's
``artifacts/model.pt`` is left alone unless ``--save`` is given (it then holds the first
seed's model).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .. import config
from . import machine, write_report

# The candidates of --compare: name -> what differs from the plan.
CANDIDATES: dict[str, dict[str, Any]] = {
    "centernet_resnet18_s2 (stride-2 heatmap, 256 px crops)": {},
    "centernet_resnet18 (stride-4 heatmap, 256 px crops)": {"model_name": "centernet_resnet18"},
    "fcos_resnet18 (boxes, whole images)": {
        "model_name": "fcos_resnet18",
        "crop_size": None,
        "repeats": 1,
        "batch_size": 4,
        "lr": 1e-3,
    },
}


def run_once(plan, train, val, test, seed: int, progress: bool) -> tuple[Any, dict[str, Any]]:
    """One training run and its held-out scores."""
    from ..evaluate import evaluate, headline
    from ..train import fit

    started = time.perf_counter()
    result = fit(train, val, plan, seed=seed, progress=progress)
    fit_seconds = time.perf_counter() - started
    scores = evaluate(result.predictor(), test)
    m = result.metrics
    return result, {
        "seed": seed,
        "train_seconds": m["train_seconds"],
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": m["seconds_per_epoch"],
        "precision": m.get("precision"),
        "kept_epoch": result.kept_epoch,
        "threshold": result.config.score_threshold,
        **headline(scores, prefix="test_"),
    }


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst of each figure over seeds (worst: lowest mAP, highest error and time)."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in rows]}
    for key, worst in (
        ("train_seconds", max),
        ("test_map", min),
        ("test_map_50", min),
        ("test_count_mae", max),
        ("test_count_mape", max),
    ):
        values = [r[key] for r in rows]
        out[key] = {"mean": round(statistics.fmean(values), 4), "worst": worst(values)}
    return out


def format_rows(rows: Sequence[dict[str, Any]], label: str = "seed") -> str:
    head = f"{label:<44} {'train s':>8} {'mAP':>6} {'mAP50':>6} {'MAE':>6} {'MAPE %':>7}"
    lines = [head]
    for r in rows:
        name = str(r.get("name", r["seed"]))
        lines.append(
            f"{name:<44} {r['train_seconds']:>8.1f} {r['test_map']:>6.3f} {r['test_map_50']:>6.3f} "
            f"{r['test_count_mae']:>6.2f} {r['test_count_mape']:>7.2f}"
        )
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for key, label in (
        ("train_seconds", "train s"),
        ("test_map", "mAP"),
        ("test_map_50", "mAP50"),
        ("test_count_mae", "MAE"),
        ("test_count_mape", "MAPE %"),
    ):
        v = summary[key]
        lines.append(f"{label:<8} mean {v['mean']:.3f}   worst {v['worst']:.3f}")
    return "\n".join(lines)


def seconds_per_step(plan, train, steps: int = 3) -> float:
    """Measured cost of one training step of ``plan`` on this machine (after one warm-up)."""
    from ..train import make_optimizer, pick_precision, set_up, to_device, train_step

    run = set_up(train, plan, pretrained=False)  # fit's set-up, at the photos' own scale
    device, loader, model = run.device, run.loader, run.model.train()
    precision = pick_precision(device)
    opt = make_optimizer(model, "adamw", plan.lr * 0.01)
    batches = iter(loader)
    elapsed = 0.0
    for i in range(steps + 1):
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, targets = next(batches)
        t0 = time.perf_counter()
        images, targets = to_device(images, targets, device)
        train_step(model, images, targets, opt, None, precision, 10.0)
        if i:
            elapsed += time.perf_counter() - t0
    return elapsed / steps


def compare(plan, budget: float, train, val, test, seed: int, progress: bool):
    """Each candidate trained for as many epochs as fit in ``budget`` seconds."""
    rows = []
    for name, changes in CANDIDATES.items():
        candidate = replace(plan, **changes)
        per_step = seconds_per_step(candidate, train)
        steps_per_epoch = -(-len(train) * candidate.repeats // candidate.batch_size)
        epochs = max(1, int(budget / (per_step * steps_per_epoch)))
        candidate = replace(candidate, epochs=epochs, eval_every=max(1, epochs // 4))
        print(f"{name}: {per_step:.2f} s/step -> {epochs} epochs in {budget:.0f} s", flush=True)
        _, row = run_once(candidate, train, val, test, seed, progress)
        rows.append({"name": name, "epochs": epochs, "seconds_per_step": per_step, **row})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench train", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="the fast plan (as COURSE_FAST=1)")
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--size", type=int, help="override the plan's input size")
    parser.add_argument("--model", help="override the model name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--compare", action="store_true", help="candidates in the same budget")
    parser.add_argument("--budget", type=float, help="seconds per candidate for --compare")
    parser.add_argument("--save", action="store_true", help="also write artifacts/model.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--highres",
        type=int,
        nargs="?",
        const=2800,
        help="full-resolution photos of this side (default 2800) instead of data/",
    )
    parser.add_argument("--cell-size", type=float, help="override the plan's cell size (px)")
    args = parser.parse_args(argv)

    from ..annotations import load_annotations
    from ..dataset import split
    from ..synth import ensure_course_data, ensure_highres_data
    from ..train import preset

    if args.highres:
        root = ensure_highres_data(size=args.highres)
        train_dir, test_dir = root / "train", root / "test"
    else:
        ensure_course_data()
        train_dir, test_dir = config.train_dir(), config.test_dir()
    plan = preset(args.fast)
    overrides = {
        "epochs": args.epochs,
        "image_size": args.size,
        "model_name": args.model,
        "cell_size": args.cell_size,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    test = load_annotations(test_dir)
    host = machine()
    mode = "fast" if args.fast else "full"
    report: dict[str, Any] = {"mode": mode, "plan": plan.kwargs(), "machine": host}
    print(
        f"{plan.model_name} at {plan.image_size} px, {plan.epochs} epochs ({mode} plan), "
        f"seeds {args.seeds}; {host['cpu']}, {host.get('torch_threads')} torch threads."
    )
    if args.compare:
        train, val = split(load_annotations(train_dir), 0.2, seed=args.seeds[0])
        budget = args.budget or plan_budget(plan, train)
        rows = compare(plan, budget, train, val, test, args.seeds[0], not args.quiet)
        report.update(budget_seconds=budget, compare=rows)
        print(f"\nSame budget ({budget:.0f} s of training each), seed {args.seeds[0]}:")
        print(format_rows(rows, label="candidate"))
    else:
        rows, first = [], None
        for seed in args.seeds:
            train, val = split(load_annotations(train_dir), 0.2, seed=seed)
            result, row = run_once(plan, train, val, test, seed, not args.quiet)
            rows.append({**row, "scale": result.config.scale})
            first = first or result
            if args.save and seed == args.seeds[0]:
                result.save(config.checkpoint_path())
            print(format_rows([row]).splitlines()[1], flush=True)
        report.update(runs=rows, summary=summarise(rows))
        print(
            f"\n{format_rows(rows)}\n\nover {len(rows)} seed(s):\n{format_summary(summarise(rows))}"
        )
        if args.highres:
            from .highres import format_latency, runtime_latency

            c = first.config
            print(
                f"\nworking scale {c.scale:.4g} (cell size {c.cell_size:g} px), "
                f"{c.image_size} px tiles overlapping {c.tile_overlap} px; timing runtimes...",
                flush=True,
            )
            photos = [item.image_path for item in test.images[:5]]
            calibration = [item.image_path for item in load_annotations(train_dir).images[:8]]
            latency = runtime_latency(
                first, photos, calibration, config.artifacts_dir() / "bench_highres"
            )
            report["latency"] = latency
            print(format_latency(latency))
    name = "bench_compare" if args.compare else "bench_train"
    out = config.artifacts_dir() / f"{name}{'_highres' if args.highres else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report)
    print(
        f"\nheld-out: {len(test)} images, {sum(len(i.boxes) for i in test.images)} cells; "
        f"{host['cpu']}, {host['cpu_count']} CPUs, {host.get('torch_threads')} torch threads\n"
        f"wrote {config.display_path(out)}"
    )
    return 0


def plan_budget(plan, train) -> float:
    """The plan's own training time, estimated from its measured seconds per step."""
    steps_per_epoch = -(-len(train) * plan.repeats // plan.batch_size)
    return seconds_per_step(plan, train) * steps_per_epoch * plan.epochs


if __name__ == "__main__":
    raise SystemExit(main())
