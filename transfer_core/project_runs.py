"""Runs started outside the app (the CLI's ``--project``) that belong to a project.

A run trained from the command line should appear in the app exactly like one started there:
in its project's ``runs/`` folder, on that project's dataset, with that project's corrections.
The dataset and backbone are checked before anything is created, so a typo never leaves an empty
project or run behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import TrainConfig
from .data.records import DatasetIndex
from .data.splits import load_run_split
from .errors import WarmstartError
from .insight.backbone_choice import AUTO_BACKBONE, BackboneChoice, record_choice, resolve_backbone
from .reporting import OnProgress
from .projects import DatasetRef, Project, ProjectStore, recipe_from_config
from .runs.store import RunDir

__all__ = ["dataset_ref", "project_run", "resumable_run"]

RESUMABLE = ("stopped", "interrupted")


def dataset_ref(config: TrainConfig, train: DatasetIndex, val: DatasetIndex) -> DatasetRef:
    """The project's record of ``config``'s dataset: named after its folder or file (``flowers.zip``
    → ``flowers``), with the image and class counts the project list shows."""
    source = Path(config.data)
    name = source.stem if source.is_file() else source.name
    return DatasetRef(name=name or str(source), source=config.data, val_source=config.val_data,
                      images=len(train) + len(val), classes=list(train.classes))


def project_run(store: ProjectStore, name: str, config: TrainConfig, label: str | None = None,
                on_choice: Callable[[BackboneChoice], None] | None = None, on_progress: OnProgress | None = None,
                ) -> tuple[Project, RunDir, TrainConfig, tuple[DatasetIndex, DatasetIndex]]:
    """A new run folder for ``config`` in the project called (or with the folder) ``name``.

    A missing project is created with ``config``'s dataset and recipe. An existing one keeps its
    recipe (the app edits it); its corrections file, when there is one, applies to the run as it
    would in the app. Returns the project, the run, the config the run trains with and the
    dataset's indexes (so the trainer does not read the dataset twice).

    A backbone of ``auto`` becomes the shoot-out's winner on the (corrected) training images before
    anything is created, so the project's recipe and the run's config name a real backbone; the
    choice goes into the run's events and to ``on_choice``; ``on_progress`` follows the shoot-out.

    Raises:
        WarmstartError: the dataset cannot be used, or the project holds another dataset.
    """
    from .models.registry import get_backbone
    from .training.trainer import resolve_device

    if config.backbone != AUTO_BACKBONE:
        get_backbone(config.backbone)  # an unknown backbone or a missing GPU is refused before anything is created
    resolve_device(config.device)
    project = store.find(name)
    if project is not None:
        _check_same_dataset(project, config)
        if project.corrections_file.is_file():
            config = config.replace(corrections=str(project.corrections_file))
    data = load_run_split(config)
    config, choice = resolve_backbone(config, data, on_progress)
    if project is None:
        project = store.create(name, dataset=dataset_ref(config, *data), recipe=recipe_from_config(config))
    elif project.dataset is None:
        project.set_dataset(dataset_ref(config, *data))
    run = project.run_store().new_run(config, label)
    if choice is not None:
        record_choice(run, choice)
        if on_choice is not None:
            on_choice(choice)
    return project, run, config, data


def resumable_run(store: ProjectStore, name: str) -> RunDir:
    """The project's most recently active run that stopped or was interrupted.

    Raises:
        WarmstartError: no such project, or none of its runs can be resumed.
    """
    project = store.find(name)
    if project is None:
        raise WarmstartError(f"There is no project '{name}', so there is nothing to resume.")
    runs = [run for run in project.run_store().runs() if run.status() in RESUMABLE]
    if not runs:
        raise WarmstartError(f"Project '{project.name}' has no stopped or interrupted run to resume.")
    return max(runs, key=RunDir.last_activity)


def _check_same_dataset(project: Project, config: TrainConfig) -> None:
    """A project is one dataset (as in the app): a run on other data would mix up its runs and corrections."""
    if project.dataset is None:
        return
    if Path(project.dataset.source).resolve() != Path(config.data).resolve():
        raise WarmstartError(
            f"Project '{project.name}' trains on '{project.dataset.source}', not '{config.data}'; "
            "a project holds one dataset, so give another --project name."
        )
