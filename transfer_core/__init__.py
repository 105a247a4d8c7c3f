"""Warmstart's engine: guided transfer learning for image classification, with no UI code.

The app, the command line and the tests all drive this same API::

    from transfer_core import TrainConfig, Trainer, RunDir
    result = Trainer(TrainConfig(data="photos/", strategy="frozen"), "runs/first").fit()

Layout: ``data/`` (sources, splits, decoding, augmentation), ``models/`` (registry, transfer model,
metadata), ``features/`` (the one inference path and the feature cache), ``training/`` (the loop,
callbacks, events), ``runs/`` (the run store), ``insight/`` (metrics, explanations, health),
``deploy/`` (prediction, export). See ARCHITECTURE.md for the path the data takes.
"""

from .data.augment import augment_previews, batch_mixer, eval_transform, train_transform
from .data.corrections import Corrections, corrections_path_for
from .data.images import IMAGE_EXTENSIONS, ImageReadError
from .data.samples import SAMPLES, prepare_sample
from .models.registry import (
    Availability,
    Backbone,
    BackboneSpec,
    Preprocessing,
    WeightsSource,
    get_backbone,
    list_backbones,
    list_timm_models,
    register_backbone,
)
from .config import AugmentConfig, AugmentPreset, Balance, OptimizerName, Schedule, Strategy, TrainConfig
from .data.archives import extract_zip
from .data.records import DatasetIndex, ImageRecord, SkippedFile
from .data.pool import SKIP as POOL_SKIP, PoolLabels, load_pool, pool_labels_path_for
from .data.sources import load_dataset
from .data.splits import load_train_val, split_train_val
from .data.summary import DatasetSummary, summarize
from .errors import WarmstartError
from .insight.compare import config_differences, flatten_config, scratch_baseline
from .insight.compare import dataset_name, learning_curve, training_seconds
from .insight.embedding_map import embedding_map
from .insight.embedding_map import separation_verdict
from .insight.evaluate import classification_report, per_image_predictions
from .insight.evaluate import report_intervals
from .insight.evaluate import small_sample_warning
from .insight.evaluate import best_epoch_verdict
from .insight.explain import grad_cam, overlay_heatmap
from .insight.health import HealthReport, health_check
from .insight.health import likely_mislabels, mislabel_evidence
from .insight.label_errors import LabelErrors, label_error_evidence, labels_to_check, rank_label_errors
from .reporting import OnProgress
from .insight.shootout import backbone_shootout
from .insight.shootout import shootout_verdict
from .insight.backbone_choice import AUTO_BACKBONE, BackboneChoice, auto_candidates, rank, recommend, resolve_backbone
from .insight.transferability import logme
from .insight.selection import Suggestion, suggest
from .training.pool_data import read_pseudo_labels
from .limits import input_limits
from .training.events import Event, RunEvent
from .data.images import open_rgb
from .models.transfer import TransferModel, count_parameters, set_trainable_groups, trainable_groups_at
from .models.transfer import StrategyParameters, parameter_counts
from .deploy.export import EXPORT_FORMATS, ONNX_OPSET, export_run, export_zip
from .deploy.latency import FormatCost, RunCost, measure_export, measure_latency, measure_run, read_latency
from .training.distillation import distillation_config
from .deploy.verify import EXPORT_TOLERANCE, INT8_ACCURACY_DROP, FormatAgreement, verify_export
from .deploy.predict import Prediction, Predictor, evaluate_run, load_trained_model
from .deploy.predict import expand_inputs, predictions_table
from .deploy.tta import TTA_VIEWS, TTAChange, TTAComparison, compare_tta
from .presets import PRESET_DESCRIPTIONS, PRESETS
from .runs.store import RunDir, RunStore
from .runs.names import display_name, short_backbone
from .classroom import Classroom, Identity, classroom_from_env
from .projects import DatasetRef, Project, ProjectStore, ProjectSummary, config_from_recipe, corrections_file_for_run, recipe_from_config
from .workspace import home as workspace_home
from .training.callbacks import Callback
from .training.loop import Loop
from .training.progress import ProgressBar
from .training.tensorboard import TensorBoardLogger
from .runs.store import atomic_write_json
from .training.lr_finder import LRFinderResult, find_lr
from .training.trainer import Trainer, TrainResult, train

__all__ = [
    "atomic_write_json",
    "augment_previews",
    "AugmentConfig",
    "AugmentPreset",
    "AUTO_BACKBONE",
    "auto_candidates",
    "Availability",
    "Backbone",
    "backbone_shootout",
    "BackboneChoice",
    "BackboneSpec",
    "Balance",
    "batch_mixer",
    "best_epoch_verdict",
    "Callback",
    "classification_report",
    "Classroom",
    "classroom_from_env",
    "compare_tta",
    "config_differences",
    "config_from_recipe",
    "Corrections",
    "corrections_file_for_run",
    "corrections_path_for",
    "count_parameters",
    "dataset_name",
    "DatasetIndex",
    "DatasetRef",
    "DatasetSummary",
    "display_name",
    "distillation_config",
    "embedding_map",
    "eval_transform",
    "evaluate_run",
    "Event",
    "expand_inputs",
    "EXPORT_FORMATS",
    "export_run",
    "EXPORT_TOLERANCE",
    "export_zip",
    "extract_zip",
    "find_lr",
    "flatten_config",
    "FormatAgreement",
    "FormatCost",
    "get_backbone",
    "grad_cam",
    "health_check",
    "HealthReport",
    "Identity",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageRecord",
    "input_limits",
    "INT8_ACCURACY_DROP",
    "label_error_evidence",
    "LabelErrors",
    "labels_to_check",
    "learning_curve",
    "likely_mislabels",
    "list_backbones",
    "list_timm_models",
    "load_dataset",
    "load_pool",
    "load_train_val",
    "load_trained_model",
    "logme",
    "Loop",
    "LRFinderResult",
    "measure_export",
    "measure_latency",
    "measure_run",
    "mislabel_evidence",
    "ONNX_OPSET",
    "OnProgress",
    "open_rgb",
    "OptimizerName",
    "overlay_heatmap",
    "parameter_counts",
    "per_image_predictions",
    "pool_labels_path_for",
    "POOL_SKIP",
    "PoolLabels",
    "Prediction",
    "predictions_table",
    "Predictor",
    "prepare_sample",
    "Preprocessing",
    "PRESET_DESCRIPTIONS",
    "PRESETS",
    "ProgressBar",
    "Project",
    "ProjectStore",
    "ProjectSummary",
    "rank",
    "rank_label_errors",
    "read_latency",
    "read_pseudo_labels",
    "recipe_from_config",
    "recommend",
    "register_backbone",
    "report_intervals",
    "resolve_backbone",
    "RunCost",
    "RunDir",
    "RunEvent",
    "RunStore",
    "SAMPLES",
    "Schedule",
    "scratch_baseline",
    "separation_verdict",
    "set_trainable_groups",
    "shootout_verdict",
    "short_backbone",
    "SkippedFile",
    "small_sample_warning",
    "split_train_val",
    "Strategy",
    "StrategyParameters",
    "suggest",
    "Suggestion",
    "summarize",
    "TensorBoardLogger",
    "train",
    "train_transform",
    "trainable_groups_at",
    "TrainConfig",
    "Trainer",
    "training_seconds",
    "TrainResult",
    "TransferModel",
    "TTA_VIEWS",
    "TTAChange",
    "TTAComparison",
    "verify_export",
    "WarmstartError",
    "WeightsSource",
    "workspace_home",
]
