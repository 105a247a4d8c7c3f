"""Warmstart's engine: guided transfer learning for image classification, with no UI code.

The app, the command line and the tests all drive this same API::

    from transfer_core import TrainConfig, Trainer, RunDir
    result = Trainer(TrainConfig(data="photos/", strategy="frozen"), "runs/first").fit()
"""

from .data.augment import augment_previews, batch_mixer, eval_transform, train_transform
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
from .data.sources import load_dataset
from .data.splits import load_train_val, split_train_val
from .data.summary import DatasetSummary, summarize
from .errors import WarmstartError
from .insight.evaluate import classification_report, per_image_predictions
from .training.events import Event, RunEvent
from .data.images import open_rgb
from .models.transfer import TransferModel, count_parameters, set_trainable_groups, trainable_groups_at
from .deploy.predict import Prediction, Predictor, evaluate_run, load_trained_model
from .runs.store import RunDir, RunStore
from .training.trainer import Trainer, TrainResult, train

__all__ = [
    "AugmentConfig",
    "AugmentPreset",
    "Availability",
    "Backbone",
    "BackboneSpec",
    "Balance",
    "DatasetIndex",
    "DatasetSummary",
    "Event",
    "ImageRecord",
    "OptimizerName",
    "Prediction",
    "Predictor",
    "Preprocessing",
    "RunDir",
    "RunEvent",
    "RunStore",
    "Schedule",
    "SkippedFile",
    "Strategy",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TransferModel",
    "WarmstartError",
    "WeightsSource",
    "augment_previews",
    "batch_mixer",
    "classification_report",
    "count_parameters",
    "eval_transform",
    "evaluate_run",
    "extract_zip",
    "get_backbone",
    "list_backbones",
    "list_timm_models",
    "load_dataset",
    "load_train_val",
    "load_trained_model",
    "open_rgb",
    "per_image_predictions",
    "register_backbone",
    "set_trainable_groups",
    "split_train_val",
    "summarize",
    "train",
    "train_transform",
    "trainable_groups_at",
]
