"""Projects: one dataset, the recipe being edited for it, and its runs, kept together on disk.

A person's work is organised the way Teachable Machine, Edge Impulse and Roboflow organise it:
by project. Each project is a folder under ``<root>/projects/``::

    project.json        name, dataset (name, source, image and class counts), recipe, times
    corrections.json    relabelled / excluded images of this project's dataset
    uploads/            what was uploaded for it (deleted with the project)
    runs/               its run folders (a RunStore)

The folder name (a slug fixed at creation) is the project's id in URLs and on the command line;
renaming changes only the display name, so no path recorded in a run ever breaks. A slug from a
URL is looked up only among the folders of this store's root, so one person's store cannot
reach another's by guessing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import AugmentConfig, TrainConfig
from .errors import WarmstartError
from .data.corrections import corrections_path_for
from .runs.store import RunStore, atomic_write_json

__all__ = ["DatasetRef", "Project", "ProjectStore", "ProjectSummary", "config_from_recipe", "corrections_file_for_run", "recipe_from_config"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class DatasetRef:
    """The dataset a project trains on; counts are filled in once it has been read successfully."""

    name: str
    source: str
    val_source: str | None = None
    images: int | None = None
    classes: list[str] | None = None
    pool: str | None = None  # a folder of unlabelled images beside the dataset (see transfer_core.data.pool)


@dataclass(frozen=True)
class ProjectSummary:
    """What the project list shows for one project."""

    images: int | None
    classes: int | None
    best_accuracy: float | None
    runs: int
    last_activity: float


@dataclass
class Project:
    """One project folder. ``recipe`` is the app's flat settings dict (plus ``preset`` and
    ``done``), stored as edited so a refresh, a second tab or tomorrow shows the same choices."""

    path: Path
    name: str
    dataset: DatasetRef | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def slug(self) -> str:
        return self.path.name

    @property
    def file(self) -> Path:
        return self.path / "project.json"

    @property
    def uploads(self) -> Path:
        return self.path / "uploads"

    @property
    def corrections_file(self) -> Path:
        return self.path / "corrections.json"

    def run_store(self) -> RunStore:
        return RunStore(self.path / "runs")

    def stamp(self) -> int:
        """Changes whenever project.json is rewritten (by this session, another tab or the CLI)."""
        try:
            return self.file.stat().st_mtime_ns
        except OSError:
            return 0

    def save(self) -> None:
        self.updated = time.time()
        data = {"name": self.name, "dataset": asdict(self.dataset) if self.dataset else None,
                "recipe": self.recipe, "created": self.created, "updated": self.updated}
        atomic_write_json(self.file, data)

    def set_dataset(self, dataset: DatasetRef) -> None:
        self.dataset = dataset
        self.save()

    def save_recipe(self, recipe: dict[str, Any]) -> None:
        self.recipe = dict(recipe)
        self.save()

    def summary(self) -> ProjectSummary:
        """Counts, best validation accuracy over its runs, and when it was last touched."""
        best, count, last = None, 0, self.updated
        for run in self.run_store().runs():
            count += 1
            accuracy = run.final_accuracy()
            if accuracy is not None:
                best = accuracy if best is None else max(best, accuracy)
            last = max(last, run.last_activity())
        dataset = self.dataset
        return ProjectSummary(
            images=dataset.images if dataset else None,
            classes=len(dataset.classes) if dataset and dataset.classes is not None else None,
            best_accuracy=best, runs=count, last_activity=last,
        )

    @classmethod
    def load(cls, path: Path) -> Project:
        try:
            data = json.loads((path / "project.json").read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(DatasetRef)}  # a newer version may add fields
            dataset = DatasetRef(**{k: v for k, v in data["dataset"].items() if k in known}) if data.get("dataset") else None
            return cls(path=path, name=str(data["name"]), dataset=dataset, recipe=dict(data.get("recipe") or {}),
                       created=float(data.get("created", 0)), updated=float(data.get("updated", 0)))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise WarmstartError(f"Project '{path.name}' cannot be read ({exc}).") from None


class ProjectStore:
    """The projects of one person (or of the single-user server), under ``root/projects``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "projects"

    def create(self, name: str, dataset: DatasetRef | None = None, recipe: dict[str, Any] | None = None) -> Project:
        """A new project with a unique folder derived from ``name``."""
        name = _clean_name(name)
        taken = {p.name.casefold() for p in self.projects()}
        if name.casefold() in taken:  # two rows reading "shapes" could not be told apart
            name = next(f"{name} ({n})" for n in range(2, 10_000) if f"{name} ({n})".casefold() not in taken)
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "project"
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            slug = base if attempt == 0 else f"{base}-{attempt + 1}"
            try:
                (self.root / slug).mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise WarmstartError(f"Too many projects named '{name}'; choose another name.")
        project = Project(path=self.root / slug, name=name, dataset=dataset, recipe=dict(recipe or {}))
        project.save()
        return project

    def projects(self) -> list[Project]:
        """Every readable project, most recently active first (unreadable folders are skipped)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if path.is_dir() and (path / "project.json").is_file():
                try:
                    found.append(Project.load(path))
                except WarmstartError:
                    continue
        return sorted(found, key=lambda p: p.updated, reverse=True)

    def get(self, slug: str) -> Project:
        """The project in folder ``slug`` of this store (never a path outside it).

        Raises:
            WarmstartError: when ``slug`` is not a project of this store.
        """
        if not isinstance(slug, str) or not _SLUG.match(slug) or not (self.root / slug / "project.json").is_file():
            raise WarmstartError(f"No project '{slug}' here.")
        return Project.load(self.root / slug)

    def find(self, name_or_slug: str) -> Project | None:
        """The project with this folder name, else with this display name (case-insensitive)."""
        wanted = name_or_slug.strip()
        for project in self.projects():
            if project.slug == wanted:
                return project
        for project in self.projects():
            if project.name.lower() == wanted.lower():
                return project
        return None

    def rename(self, slug: str, new_name: str) -> Project:
        project = self.get(slug)
        project.name = _clean_name(new_name)
        project.save()
        return project

    def delete(self, slug: str) -> None:
        """Remove a project with its uploads, corrections and runs; refused while one of its runs trains."""
        project = self.get(slug)
        training = [run.name for run in project.run_store().runs() if run.status() == "running"]
        if training:
            raise WarmstartError(f"Project '{project.name}' has a run training ({training[0]}); stop it before deleting the project.")
        shutil.rmtree(project.path)

    def owns(self, path: str | Path) -> bool:
        """Whether ``path`` lies inside this store's projects (used to refuse paths from elsewhere)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
            return True
        except (ValueError, OSError):
            return False


def corrections_file_for_run(run_path: str | Path, data: str) -> Path:
    """Where corrections of a run's dataset go: its project's file, or (a run outside any project)
    the file beside the dataset."""
    project_dir = Path(run_path).parent.parent
    if (project_dir / "project.json").is_file():
        return project_dir / "corrections.json"
    return corrections_path_for(data)


def _clean_name(name: str) -> str:
    clean = " ".join(str(name).split())[:80]
    if not any(ch.isalnum() for ch in clean):
        raise WarmstartError("A project name needs at least one letter or digit.")
    return clean


_AUGMENT_FIELDS = [f.name for f in dataclasses.fields(AugmentConfig)]
_RECIPE_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "val_data", "augment", "corrections", "unlabeled", "pseudo_labels_from", "teacher")]


def recipe_from_config(config: TrainConfig) -> dict[str, Any]:
    """The flat, JSON-ready settings of ``config`` (augmentation fields prefixed ``aug_``), as the
    Settings page edits them and a project stores them."""
    values = {name: getattr(config, name) for name in _RECIPE_FIELDS}
    values.update({f"aug_{name}": getattr(config.augment, name) for name in _AUGMENT_FIELDS})
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}


def config_from_recipe(recipe: dict[str, Any], data: str = "", val_data: str | None = None,
                       corrections: str | None = None) -> TrainConfig:
    """The TrainConfig for a recipe and a dataset; unknown keys (from an older version) are ignored,
    missing ones take the defaults. Raises WarmstartError when a value is invalid."""
    defaults = recipe_from_config(TrainConfig())
    values = {k: recipe.get(k, v) for k, v in defaults.items()}
    try:
        augment = AugmentConfig(**{name: values.pop(f"aug_{name}") for name in _AUGMENT_FIELDS})
        return TrainConfig(data=data, val_data=val_data, corrections=corrections, augment=augment, **values)
    except TypeError as exc:  # a hand-edited or damaged project.json: "epochs": "ten"
        raise WarmstartError(f"A saved setting has a value of the wrong kind ({exc}); choose a preset to start over.") from None
