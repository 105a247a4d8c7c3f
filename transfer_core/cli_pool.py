"""The unlabelled pool on the command line: the ``suggest`` command (which pool images to label next,
see :mod:`transfer_core.insight.selection`) and ``train``'s pool options (``--unlabeled``, pseudo-labels).

Kept out of :mod:`transfer_core.cli` so that module stays short.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from .errors import WarmstartError

__all__ = ["add_parser", "add_pool_arguments", "pool_settings", "run"]

HELP = (
    "propose the next pool images to label: give RUN_DIR POOL to use a trained run (uncertainty + diversity), "
    "or POOL alone (or --cold) for a cold start (typical and diverse images, no run needed)"
)


def add_parser(sub) -> None:
    p = sub.add_parser("suggest", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a trained run folder (leave out for a cold start)")
    p.add_argument("pool", metavar="POOL", help="the unlabelled pool: a folder or .zip of images, never modified")
    p.add_argument("--n", type=int, default=20, help="how many images to propose (default %(default)s)")
    p.add_argument("--cold", action="store_true", help="cold start even when RUN_DIR is given (its backbone still embeds the pool)")
    p.add_argument("--labels", metavar="LABELS.json", help="the pool's labels file (default: POOL.labels.json beside the pool); its images are never proposed")
    p.add_argument("--backbone", default=None, help="backbone whose pretrained features group the pool (default: the run's, else the default backbone)")
    p.add_argument("--csv", metavar="OUT.csv", help="also write the proposed images (rank, path, score) to this CSV file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")


def add_pool_arguments(p: argparse.ArgumentParser) -> None:
    """``train``'s options for an unlabelled pool."""
    p.add_argument("--unlabeled", metavar="POOL", help="a folder or .zip of unlabelled images: those labelled so far "
                   "(POOL.labels.json, see 'suggest') join training; the pool itself is never modified")
    p.add_argument("--pseudo-labels-from", metavar="RUN_DIR", help="self-training: that finished run's confident predictions "
                   "on the rest of --unlabeled join training too (validation stays real labels only)")
    p.add_argument("--pseudo-threshold", type=float, default=0.9, metavar="P", help="lowest probability a pseudo-label needs (default %(default)s)")
    p.add_argument("--pseudo-cap", type=int, default=20, metavar="N", help="at most N pseudo-labels per class (default %(default)s)")


def pool_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields of :func:`add_pool_arguments`' options, paths made absolute."""
    def absolute(path):
        return str(Path(path).resolve()) if path else None

    return {"unlabeled": absolute(args.unlabeled), "pseudo_labels_from": absolute(args.pseudo_labels_from),
            "pseudo_threshold": args.pseudo_threshold, "pseudo_cap": args.pseudo_cap}


def run(args: argparse.Namespace) -> int:
    from .data.pool import PoolLabels, load_pool, pool_labels_path_for
    from .insight.selection import suggest

    run_dir, pool_source = args.run, args.pool
    pool = load_pool(pool_source)
    labels = PoolLabels.load(args.labels or pool_labels_path_for(pool_source))
    backbone = args.backbone
    if args.cold and run_dir is not None and backbone is None:
        from .runs.store import RunDir

        backbone = RunDir(run_dir).read_model_info()["backbone"]
    result = suggest(pool, labels, args.n, None if args.cold else run_dir, backbone, args.device, args.seed)
    if args.csv:
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["rank", "path", "score"])
                writer.writerows((i, p, f"{s:.6g}") for i, (p, s) in enumerate(zip(result.paths, result.scores), start=1))
        except OSError as exc:
            raise WarmstartError(f"Cannot write '{args.csv}' ({exc.strerror or exc}).") from None
    for path in result.paths:
        print(path)
    print(result.strategy)
    if pool.skipped:
        print(f"{len(pool.skipped)} pool file(s) skipped (not usable images), e.g. {pool.skipped[0].path}: {pool.skipped[0].reason}.")
    return 0
