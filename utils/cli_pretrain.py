"""``python -m utils pretrain`` and ``train --pretrained``: where a training run's weights start.

Kept out of ``utils/cli.py`` (which stays under the 500-line limit); ``cli.build_parser`` calls
:func:`add_pretrained_option` and :func:`add_pretrain_command`.

    python -m utils pretrain --out artifacts/pretrained/model.pt          # ~24 min on 2 cores
    python -m utils train --data data/train --out runs/a --pretrained artifacts/pretrained/model.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import display_path

PRETRAINED_HELP = (
    "where the weights start: auto (default) = ImageNet backbone if downloadable, else random; "
    "yes = ImageNet or fail; no = random; scenes = the generated-scene start shipped with the "
    "package (utils/weights/scenes_start.pt, made by `python -m utils pretrain`); or the path "
    "of a course checkpoint (.pt) of the heatmap counter, e.g. one from `python -m utils "
    "pretrain`. Its trunk, FPN and box head are copied; the heatmap head starts fresh, so its "
    "classes may differ. Measured (docs/real_data.md): on BCCD with the 10-minute clock, 2 "
    "seeds, test mAP 0.587 / mAP@.5 0.894 from scenes against 0.583 / 0.893 from random "
    "weights; with --minutes 2, seed 0, 0.557 / 0.875 against 0.515 / 0.875; on the course's "
    "fast plan, 3 seeds, mAP 0.642 against 0.584 but count error 2.7 against 2.5 percent"
)


def pretrained_value(value: str) -> bool | str:
    """``--pretrained``: auto/yes/no for ImageNet, anything else a checkpoint path."""
    return {"auto": "auto", "yes": True, "no": False, "scenes": "scenes"}.get(value, value)


def add_pretrained_option(train: argparse.ArgumentParser) -> None:
    """``train --pretrained auto|yes|no|PATH`` (checked when the model is built: exit 1)."""
    train.add_argument(
        "--pretrained", default="auto", metavar="auto|yes|no|PATH", help=PRETRAINED_HELP
    )


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .train.pretrain import VAL_PHOTOS, pretrain

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {display_path(out)} is a folder; name the file, e.g. model.pt")
    for name in ("photos", "epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    scenes = Path(args.scenes) if args.scenes else out.parent / "scenes"
    print(
        f"Generating {args.photos} + {VAL_PHOTOS} three-class scenes in {display_path(scenes)} "
        f"and training {args.epochs} epoch(s) from random weights (240 photos x 12 epochs: "
        "about 24 min on 2 busy cores)."
    )
    result = pretrain(
        out, args.photos, args.epochs, args.seed, scenes=scenes, progress=not args.quiet
    )
    m = result.metrics
    print(
        f"Validation on generated scenes: mAP@[.5:.95] {m['val_map']:.3f}, mAP@.5 "
        f"{m['val_map_50']:.3f} (weights of epoch {result.kept_epoch}/{m['epochs']}, "
        f"{m['train_seconds']:.0f} s)."
    )
    print(
        f"Wrote {display_path(out)}; start a run from it with `python -m utils train --data "
        f"DATA --out RUN --pretrained {display_path(out)}`."
    )
    return 0


def add_pretrain_command(sub) -> None:  # argparse's private _SubParsersAction
    """The ``pretrain`` subcommand."""
    p = sub.add_parser(
        "pretrain",
        help="train on generated three-class scenes: a start for `train --pretrained FILE.pt` "
        "where ImageNet weights cannot be downloaded",
    )
    p.add_argument("--out", required=True, help="the checkpoint to write (.pt)")
    p.add_argument("--photos", type=int, default=240, help="generated training photos (240)")
    p.add_argument("--epochs", type=int, default=12, help="fixed epochs, no clock (12)")
    p.add_argument("--seed", type=int, default=0, help="training seed (the photos are fixed)")
    p.add_argument("--scenes", help="folder for the generated photos (default: scenes/ by --out)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pretrain)
