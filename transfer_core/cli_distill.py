"""The ``distill`` command: train a (smaller) student backbone from a finished run (see :mod:`transfer_core.training.distillation`).

Kept out of :mod:`transfer_core.cli` so that module stays short.
"""

from __future__ import annotations

import argparse

from .errors import WarmstartError

__all__ = ["add_parser", "run"]

HELP = "train a student backbone from a finished run's outputs (knowledge distillation) on the same data and split"


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("teacher", metavar="TEACHER_RUN", help="a finished run folder: the teacher")
    p.add_argument("--backbone", required=True, help="the student's backbone, e.g. efficientnet_lite0")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="a new folder for the student's run")
    p.add_argument("--strategy", default=None, help="the student's strategy (default: the teacher's)")
    p.add_argument("--epochs", type=int, default=None, help="the student's epochs (default: the teacher's)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's soft targets against the labels (default %(default)s)")
    p.add_argument("--temperature", type=float, default=4.0, help="softening of both outputs (default %(default)s)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the teacher's)")


def run(args: argparse.Namespace) -> int:
    from .runs.store import RunDir
    from .training.distillation import distillation_config
    from .training.progress import ProgressBar
    from .training.trainer import Trainer

    out = RunDir(args.out)
    if out.path.exists() and any(out.path.iterdir()):
        raise WarmstartError(f"'{args.out}' already exists and is not empty; choose a new --out.")
    config = distillation_config(args.teacher, args.backbone, strategy=args.strategy, epochs=args.epochs,
                                 distill_alpha=args.alpha, distill_temperature=args.temperature, device=args.device)
    result = Trainer(config, out, [ProgressBar()]).fit()
    if result.report is None:
        print(f"Stopped before the first epoch finished; nothing saved in {out.path}.")
        return 1
    teacher = RunDir(args.teacher).final_accuracy()
    print(f"{result.status}: student ({args.backbone}) val accuracy {result.report['val_accuracy']:.3f}, "
          f"teacher {teacher:.3f}; report in {out.report_file}")
    return 0
