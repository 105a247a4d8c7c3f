"""Command line: ``python -m transfer_core {backbones,train,evaluate,predict,export,suggest}``.

Bad input ends with exit code 2 and one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_distill import add_parser as add_distill
from .cli_pool import add_parser as add_suggest, add_pool_arguments, pool_settings
from .config import DEFAULT_EMA_DECAY, AugmentConfig, AugmentPreset, Balance, OptimizerName, Schedule, Strategy, TrainConfig
from .errors import WarmstartError
from .runs.store import RunDir

EXIT_BAD_INPUT = 2


def _choices(enum_type) -> list[str]:
    return [member.value for member in enum_type]


def _build_parser(prog: str = "python -m transfer_core") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Warmstart: train an image classifier from a pretrained backbone on your own photos.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("backbones", help="list available backbones and whether their weights are on this machine")
    p.add_argument("--timm", metavar="PATTERN", help="also list timm models matching PATTERN, e.g. '*convnext*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    defaults = TrainConfig()
    p = sub.add_parser("train", help="train a classifier on a folder, zip or CSV of labeled images")
    p.add_argument("data", help="folder of class/image sub-folders, a .zip of one, or a CSV manifest (path,label)")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", metavar="VAL_DATA", help="separate validation set (same forms as DATA)")
    val.add_argument("--val-split", type=float, default=defaults.val_split, help="fraction held out for validation (default %(default)s)")
    p.add_argument("--out", metavar="RUN_DIR", help="folder for the run (config, metrics, checkpoint, report); or use --project")
    p.add_argument(
        "--project", metavar="NAME",
        help="instead of --out: a new run in this project of the workspace (created if no project has this name), shown in the app",
    )
    p.add_argument("--resume", action="store_true", help="continue a stopped run in RUN_DIR (or the project's latest stopped run) from its last complete epoch")
    p.add_argument(
        "--backbone", default=defaults.backbone,
        help="backbone name (see the 'backbones' command), or 'auto': a shoot-out on the training images picks one",
    )
    p.add_argument("--strategy", choices=_choices(Strategy), default=defaults.strategy.value)
    p.add_argument("--trainable-blocks", type=int, default=defaults.trainable_blocks, help="blocks that train with --strategy partial")
    p.add_argument("--unfreeze-every", type=int, default=defaults.unfreeze_every, help="epochs between unfreezing steps with --strategy gradual")
    p.add_argument("--head-warmup-epochs", type=int, default=defaults.head_warmup_epochs, help="epochs fitting the head alone before fine-tuning")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--image-size", type=int, default=None, help="input size in pixels (default: the backbone's)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=None, help="learning rate of the new head (default: 1e-2 frozen, 3e-3 when fine-tuning)")
    p.add_argument("--backbone-lr-factor", type=float, default=defaults.backbone_lr_factor, help="backbone LR = head LR x this")
    p.add_argument("--optimizer", choices=_choices(OptimizerName), default=defaults.optimizer.value)
    p.add_argument("--schedule", choices=_choices(Schedule), default=defaults.schedule.value)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--dropout", type=float, default=defaults.dropout)
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--l2sp", type=float, default=defaults.l2sp, help="strength of the pull toward the pretrained weights")
    p.add_argument("--early-stopping", type=int, default=defaults.early_stopping_patience, metavar="PATIENCE", help="stop after this many epochs without a better val loss (0 = off)")
    p.add_argument("--grad-clip", type=float, default=defaults.grad_clip, help="clip the gradient norm (0 = off)")
    p.add_argument("--balance", choices=_choices(Balance), default=defaults.balance.value)
    p.add_argument("--augment", choices=_choices(AugmentPreset), default=AugmentPreset.NONE.value, help="augmentation preset")
    p.add_argument("--mixup", type=float, default=None, metavar="ALPHA", help="mixup alpha (overrides the preset)")
    p.add_argument("--cutmix", type=float, default=None, metavar="ALPHA", help="cutmix alpha (overrides the preset)")
    p.add_argument("--batch-augment", choices=["auto", "on", "off"], default=defaults.batch_augment, help="augment whole batches on the training device (auto: on a GPU)")
    p.add_argument("--augment-views", type=int, default=defaults.augment_views, metavar="N", help="frozen + augmentation: cache N augmented views per image and cycle through them (0 = new views every epoch)")
    p.add_argument("--ema", action="store_true", help="validate and save a moving average of the weights (partial, full or gradual only)")
    p.add_argument("--ema-decay", type=float, default=None, metavar="DECAY", help=f"its longest memory, implies --ema (default {DEFAULT_EMA_DECAY})")
    add_pool_arguments(p)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--tensorboard", metavar="DIR", default=None,
        help="also log the run's curves to a TensorBoard folder (needs the optional 'tensorboard' package)",
    )

    p = sub.add_parser("evaluate", help="metrics of a trained run on its validation set or another labeled dataset")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("data", nargs="?", help="labeled dataset to evaluate on (default: the run's validation set)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average 6 views per image (6x the time); also prints the accuracy without")

    p = sub.add_parser("predict", help="top-k classes for image files, folders or zips of images")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("files", nargs="+", metavar="FILE", help="image files, folders (searched recursively) or .zip files")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    p.add_argument("--csv", metavar="OUT.csv", help="also write one row per image to this CSV file")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average the centre crop, its mirror and 4 corner crops (6x the time)")

    from .deploy.export import EXPORT_FORMATS

    p = sub.add_parser("export", help="export a run as TorchScript, ONNX, safetensors + model.json and a model card")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--format", default=",".join(EXPORT_FORMATS), help="comma-separated subset of: %(default)s")
    p.add_argument("--out", metavar="DIR", help="export folder (default: RUN_DIR/export)")
    p.add_argument("--zip", metavar="OUT.zip", help="also pack the export folder into this zip")
    p.add_argument("--no-verify", action="store_true", help="skip re-running the exports on the validation images")

    add_suggest(sub)
    add_distill(sub)
    return parser


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    augment = AugmentConfig.from_preset(args.augment)
    if args.mixup is not None or args.cutmix is not None:
        augment = AugmentConfig(
            **{
                **augment.__dict__,
                "mixup_alpha": args.mixup if args.mixup is not None else augment.mixup_alpha,
                "cutmix_alpha": args.cutmix if args.cutmix is not None else augment.cutmix_alpha,
            }
        )
    return TrainConfig(
        data=str(Path(args.data).resolve()),
        val_data=str(Path(args.val).resolve()) if args.val else None,
        val_split=args.val_split,
        backbone=args.backbone,
        strategy=args.strategy,
        trainable_blocks=args.trainable_blocks,
        unfreeze_every=args.unfreeze_every,
        head_warmup_epochs=args.head_warmup_epochs,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        lr=args.lr,
        backbone_lr_factor=args.backbone_lr_factor,
        optimizer=args.optimizer,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        label_smoothing=args.label_smoothing,
        l2sp=args.l2sp,
        early_stopping_patience=args.early_stopping,
        grad_clip=args.grad_clip,
        balance=args.balance,
        augment=augment,
        augment_views=args.augment_views,
        batch_augment=args.batch_augment,
        ema_decay=args.ema_decay if args.ema_decay is not None else DEFAULT_EMA_DECAY if args.ema else 0.0,
        seed=args.seed,
        device=args.device,
        **pool_settings(args),
    )


def _cmd_backbones(args: argparse.Namespace) -> int:
    from .models.registry import list_backbones, list_timm_models

    rows = [spec.to_dict() for spec in list_backbones()]
    if args.timm:
        rows += [{"name": f"timm/{n}", "source": "timm", "availability": None} for n in list_timm_models(args.timm)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<28} {'source':<12} {'params':>8} {'top-1':>6} {'size':>5}  availability")
    for row in rows:
        params = f"{row['params_millions']:.1f}M" if row.get("params_millions") else "-"
        top1 = f"{row['imagenet_top1']:.1f}" if row.get("imagenet_top1") else "-"
        size = str(row.get("input_size") or "-")
        print(f"{row['name']:<28} {row['source']:<12} {params:>8} {top1:>6} {size:>5}  {row.get('availability') or 'see timm'}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.progress import ProgressBar
    from .training.tensorboard import TensorBoardLogger
    from .training.distributed import distributed_from_env
    from .training.trainer import Trainer, resolve_device

    if (args.out is None) == (args.project is None):
        raise WarmstartError("Give exactly one of --out RUN_DIR (a run folder) or --project NAME (a project in the workspace).")
    # Under torchrun every process runs this command: rank 0 picks (or creates) the run folder,
    # the others train into the same folder with its config (and write nothing).
    ranks = distributed_from_env(resolve_device(args.device).type)
    target = _project_target if args.project is not None else _folder_target
    chosen: dict[str, tuple] = {}

    def choose() -> str:
        chosen["target"] = target(args)
        return str(chosen["target"][0].path)

    path = ranks.from_main(choose)
    if ranks.is_main:
        run, config, data = chosen["target"]
    else:  # the same config: read back from the folder, or (a new --out folder) from the same arguments
        run, data = RunDir(path), None
        config = run.read_config() if run.config_file.exists() else _config_from_args(args)
    config = _auto_backbone(config, run, data, ranks.is_main)
    callbacks = [ProgressBar()]
    if args.tensorboard:
        callbacks.append(TensorBoardLogger(args.tensorboard))
    trainer = Trainer(config, run, callbacks, data=data)
    try:
        result = trainer.fit(resume=args.resume)
    except KeyboardInterrupt:
        where = f"--project {shlex.quote(args.project)}" if args.project is not None else f"--out {shlex.quote(args.out)}"
        print(f"Interrupted; continue with: {args.prog} train {shlex.quote(args.data)} {where} --resume", file=sys.stderr)
        return 130
    report = result.report
    if not ranks.is_main:
        return 0
    if report is None:
        print(f"Stopped before the first epoch finished; nothing saved in {run.path}.")
        return 1
    print(
        f"{result.status}: val accuracy {report['val_accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}, "
        f"best epoch {report['best_epoch']}, {report['train_seconds']:.1f} s; report in {run.report_file}"
    )
    return 0


def _auto_backbone(config: TrainConfig, run: RunDir, data, main: bool) -> TrainConfig:
    """``--backbone auto``: the shoot-out's winner, saved in the run's config before training (a resumed
    run's config already names it); the main process says which and why in one line."""
    from .insight.backbone_choice import resolve_run_backbone
    from .progress_lines import ProgressLines

    config, choice = resolve_run_backbone(config, run, data, ProgressLines(quiet_for=2.0) if main else None)
    if choice is not None and main:
        print(choice.announcement)
    return config


def _folder_target(args: argparse.Namespace) -> tuple[RunDir, TrainConfig, None]:
    """``--out``: the run folder the user named (new and empty, or one to resume)."""
    run = RunDir(args.out)
    if args.resume:
        if not run.exists():
            raise WarmstartError(f"'{args.out}' is not a run folder, so there is nothing to resume.")
        return run, run.read_config(), None
    if run.path.exists() and any(run.path.iterdir()):
        raise WarmstartError(f"'{args.out}' already exists and is not empty; choose a new --out or add --resume.")
    return run, _config_from_args(args), None


def _project_target(args: argparse.Namespace) -> tuple[RunDir, TrainConfig, tuple | None]:
    """``--project``: a new timestamped run in that project of the workspace, where the app lists it
    (or, with --resume, the project's latest stopped run)."""
    from .project_runs import project_run, resumable_run
    from .projects import ProjectStore
    from .workspace import home

    store = ProjectStore(home())
    if args.resume:
        run = resumable_run(store, args.project)
        print(f"Resuming {run.path}", file=sys.stderr)
        return run, run.read_config(), None
    from .progress_lines import ProgressLines

    project, run, config, data = project_run(store, args.project, _config_from_args(args),
                                             on_choice=lambda choice: print(choice.announcement),
                                             on_progress=ProgressLines(quiet_for=2.0))
    print(f"Project '{project.name}': training in {run.path}", file=sys.stderr)
    return run, config, data


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .deploy.predict import evaluate_run
    from .deploy.tta import compare_tta, tta_report
    from .insight.calibration import calibration_sentence

    report = tta_report(compare_tta(args.run, args.data)) if args.tta else evaluate_run(args.run, args.data)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    names = [row["class"] for row in report["per_class"]]
    width = max(len(n) for n in names + ["class"])
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for row in report["per_class"]:
        print(f"{row['class']:<{width}}  {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:6.3f} {row['support']:8d}")
    wrong = sum(not p["correct"] for p in report["predictions"])
    print(f"accuracy {report['val_accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}, {wrong} of {len(report['predictions'])} images wrong")
    confidence = report.get("confidence")  # not measured over TTA's averaged views
    if confidence is not None:
        # On the images the temperature was fitted on it would flatter itself: the run's cross-fitted numbers instead.
        stored = (RunDir(args.run).read_report() or {}).get("calibration") if confidence["fitted_on_these_images"] else None
        print(calibration_sentence(stored) or f"confidence at temperature {confidence['temperature']:.2f}: expected calibration "
                                              f"error {confidence['ece']:.1%}, NLL {confidence['nll']:.3f}")
    if args.tta:
        tta = report["tta"]
        print(f"with test-time augmentation ({len(tta['views'])} views); without it accuracy {tta['val_accuracy_without_tta']:.3f}. "
              f"TTA fixed {tta['fixed']} and broke {tta['broken']} prediction(s).")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .deploy.predict import Predictor, expand_inputs, predictions_table

    predictor = Predictor.from_run(args.run)
    files = expand_inputs(args.files)
    if not files:
        raise WarmstartError("No image files found in the given folders or zips.")
    predictions = predictor.predict_files(files, top_k=args.top_k, tta=args.tta)
    if args.csv:
        import csv

        rows = predictions_table(predictions)
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
            writer.writeheader()
            writer.writerows(rows)
    failures = 0
    for prediction in predictions:
        if args.json:
            print(json.dumps(prediction.to_dict()))
        elif prediction.error:
            print(f"{prediction.source}: skipped ({prediction.error})")
        else:
            ranked = ", ".join(f"{c} {p:.1%}" for c, p in prediction.top)
            print(f"{prediction.source}: {ranked}")
        failures += prediction.error is not None
    return EXIT_BAD_INPUT if failures == len(files) else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .deploy.export import export_run, export_zip
    from .deploy.latency import cost_table, measure_export
    from .deploy.verify import describe, verify_export

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    folder = export_run(args.run, formats, args.out)
    print(f"Exported {', '.join(formats)} to {folder}")
    if args.zip:
        Path(args.zip).write_bytes(export_zip(folder))
        print(f"Packed into {args.zip}")
    if args.no_verify:
        return 0
    results = verify_export(args.run, folder)
    for result in results:
        print(describe(result, "the engine"))
    print(cost_table(measure_export(folder, results)))
    return 0 if all(r.ok or (r.quantized and r.error is None) for r in results) else 1


def _cmd_suggest(args: argparse.Namespace) -> int:
    from .cli_pool import run

    return run(args)


def _cmd_distill(args: argparse.Namespace) -> int:
    from .cli_distill import run

    return run(args)


_COMMANDS = {
    "backbones": _cmd_backbones,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "suggest": _cmd_suggest,
    "distill": _cmd_distill,
}


def main(argv: Sequence[str] | None = None, prog: str = "python -m transfer_core") -> int:
    """Run one sub-command; ``prog`` is the name help and errors give the command (``warmstart`` when installed)."""
    args = _build_parser(prog).parse_args(argv)
    args.prog = prog
    try:
        return _COMMANDS[args.command](args)
    except WarmstartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before training (reading data, a shoot-out for --backbone auto): nothing to resume
        print("Interrupted; nothing was trained.", file=sys.stderr)
        return 130
