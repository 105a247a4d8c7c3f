"""The one place that owns session state: typed accessors instead of string keys on pages.

Settings live in a plain dict (``settings``) that survives page switches; widgets use keys
``w_<setting>`` that are seeded from it before they render and copied back on change, so a
preset button can fill every control at once. Every change is also saved in the open project
(its recipe), so a refresh, a second tab or the next day starts from the same choices.

What a page keeps between its runs (a result, a message for the next run, a widget the code
sets) is a :class:`SessionValue` or a :class:`ValueFor` declared at the end of this module;
pages use those objects and never name a session-state key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import pandas as pd
import streamlit as st
import torch

from transfer_core import (
    AUTO_BACKBONE,
    PRESETS,
    DatasetIndex,
    DatasetRef,
    DatasetSummary,
    FormatAgreement,
    HealthReport,
    LRFinderResult,
    Project,
    ProjectStore,
    RunDir,
    RunStore,
    Suggestion,
    TrainConfig,
    TTAComparison,
    WarmstartError,
    config_from_recipe,
    display_name,
    recipe_from_config,
    summarize,
    workspace_home,
)

from transfer_core.config import DEFAULT_EMA_DECAY
from transfer_core.runs.store import atomic_write_json

from . import auth
from .dataset_cache import DatasetIndexes
from .jobs import JobManager

STEPS = ["Data", "Backbone", "Settings", "Train", "Evaluate"]


def workspace() -> Path:
    """The engine's workspace (runs, uploads, samples, extracted zips), created on first use."""
    root = workspace_home()
    root.mkdir(parents=True, exist_ok=True)
    return root


def user_root() -> Path:
    """The folder that holds the signed-in person's projects: the workspace itself on a
    single-user server; in classroom mode the student's own folder, or for the teacher the
    student being viewed (else the teacher's own folder). Every project, run and upload path
    the pages use is derived from it, so nobody reaches another person's files."""
    room = auth.classroom()
    if room is None:
        return workspace()
    who = auth.identity()
    if who is None:
        raise WarmstartError("Sign in first.")  # the gate in app.py stops before any page runs
    viewing = st.session_state.get("viewing")
    if who.is_teacher and viewing is not None:
        return Path(viewing)
    return room.user_root(who)


def viewed_student_name() -> str | None:
    """The name of the student the teacher is viewing, if any."""
    viewing, room = st.session_state.get("viewing"), auth.classroom()
    if viewing is None or room is None:
        return None
    return next((name for name, path in room.students() if str(path) == viewing), None)


def view_student(folder: Path | None) -> None:
    """The teacher views a student's projects (None: back to the teacher's own)."""
    who = auth.identity()
    room = auth.classroom()
    if who is None or not who.is_teacher or room is None:
        return
    allowed = {str(path) for _, path in room.students()}
    st.session_state["viewing"] = str(folder) if folder is not None and str(folder) in allowed else None
    close_project()


@st.cache_resource
def job_manager() -> JobManager:
    """The process-wide job manager shared by every session and tab."""
    return JobManager(
        RunStore(workspace() / "runs"), max_concurrent=int(os.environ.get("WARMSTART_MAX_RUNS", "1")),
        queue_file=workspace() / "queue.json",
    )


def run_store() -> RunStore:
    return job_manager().store


# -- projects and their dataset ---------------------------------------------------------------

DatasetChoice = DatasetRef  # what pages call the chosen dataset


def project_store() -> ProjectStore:
    """The signed-in person's projects (everyone's, on a single-user server)."""
    return ProjectStore(user_root())


def project() -> Project | None:
    """The open project, read fresh from disk (another tab or the CLI may have changed it);
    after a browser refresh, the one named by the URL's ``?project=`` key. A name that is not one
    of this person's projects opens nothing."""
    slug = st.session_state.get("project")
    if slug is None:
        slug = st.query_params.get("project")
        if not slug:
            return None
    try:
        found = project_store().get(slug)
    except WarmstartError:
        st.session_state.pop("project", None)
        return None
    if st.session_state.get("project") != slug:
        _load_recipe(found)
    return found


def open_project(chosen: Project) -> None:
    """Make ``chosen`` the session's project: its dataset, recipe and runs."""
    for key in ("thumb_page", "selected_run", "own_job"):
        st.session_state.pop(key, None)
    _load_recipe(chosen)
    keep_project_in_url()


def close_project() -> None:
    st.session_state["project"] = None
    st.session_state["done"] = set()  # the checklist belongs to a project
    st.query_params.pop("project", None)


def _load_recipe(chosen: Project) -> None:
    """Settings, preset and finished steps from the project (a new project keeps the current ones)."""
    st.session_state["project"] = chosen.slug
    recipe = dict(chosen.recipe)
    if not recipe:  # a new project: the current choices carry over, the checklist starts afresh
        st.session_state["done"] = set()
        _save_recipe(chosen)
        return
    st.session_state["preset"] = recipe.pop("preset", None)
    st.session_state["done"] = set(recipe.pop("done", []))
    st.session_state["settings"] = {**_default_settings(), **recipe}
    for key in [k for k in st.session_state if str(k).startswith("w_")]:
        del st.session_state[key]  # widgets re-seed from the loaded values
    st.session_state["recipe_stamp"] = chosen.stamp()


def _save_recipe(chosen: Project | None = None) -> None:
    """Store the session's recipe in the project as it is edited (a refresh or a second tab reads it back)."""
    chosen = chosen or project()
    if chosen is None or st.session_state.get("viewing") is not None:
        return  # the teacher looking at a student's project changes nothing of theirs
    recipe = {**settings(), "preset": st.session_state.get("preset"), "done": sorted(st.session_state.get("done", set()))}
    try:
        chosen.save_recipe(recipe)
    except OSError:
        return  # the session keeps the values; only persistence is lost
    st.session_state["recipe_stamp"] = chosen.stamp()


def sync_recipe() -> None:
    """Pick up a recipe another tab (or the CLI) saved since this session last read or wrote it."""
    chosen = project()
    if chosen is not None and chosen.stamp() != st.session_state.get("recipe_stamp"):
        _load_recipe(chosen)


def keep_project_in_url() -> None:
    """Write the project's key into the URL on every run (navigation clears it), so a refresh keeps it."""
    slug = st.session_state.get("project")
    if slug:
        st.query_params["project"] = slug


def dataset() -> DatasetChoice | None:
    """The open project's dataset."""
    chosen = project()
    return chosen.dataset if chosen is not None else None


def set_dataset(choice: DatasetChoice, new_project: bool = False, upload: Path | None = None) -> Project:
    """Read ``choice`` and give it to the open project when that has no dataset yet; otherwise
    (or with ``new_project``) start a new project for it: a project is one dataset. The session's
    recipe carries over. ``upload`` is the folder an upload was staged in (``choice.source`` lies
    in it): it moves into the project, so deleting the project deletes the upload too.

    Raises:
        WarmstartError: the dataset cannot be used (no class folders, one class, …); nothing changes,
            so a failed upload never replaces the dataset that was working.
    """
    values = settings()
    train, val = _load_indexes(choice.source, choice.val_source, values["val_split"], values["seed"], None, 0, "Reading the dataset")
    choice = dataclasses.replace(choice, images=len(train) + len(val), classes=list(train.classes))
    chosen = None if new_project else project()
    if chosen is None or chosen.dataset is not None:
        chosen = project_store().create(choice.name)
        open_project(chosen)
    if upload is not None:
        target = chosen.uploads / upload.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(upload), str(target))
        choice = dataclasses.replace(choice, source=str(target / Path(choice.source).relative_to(upload)))
    chosen.set_dataset(choice)
    st.session_state.pop("thumb_page", None)
    return chosen


_load_indexes = DatasetIndexes(max_entries=8)  # zips are read where training reads them too


@st.cache_data(show_spinner="Looking for duplicate files…", max_entries=8)
def _summary(source: str, val_source: str | None, val_split: float, seed: int, corrections: str | None, stamp: int) -> DatasetSummary:
    """Cached like the indexes it summarises: finding byte-identical files hashes every file that shares its
    size with another, seconds at 50,000 images, which no rerun of the Data page should pay again."""
    train, val = _load_indexes(source, val_source, val_split, seed, corrections, stamp)
    return summarize(DatasetIndex(train.records + val.records, train.skipped, train.source, train.notes))


def corrections_file() -> Path | None:
    """The open project's corrections file (it may not exist yet)."""
    chosen = project()
    return chosen.corrections_file if chosen is not None and chosen.dataset is not None else None


def original_label(path: str) -> str | None:
    """The label image ``path`` has in the chosen dataset itself, before the project's corrections (None if absent)."""
    choice = dataset()
    if choice is None:
        return None
    source, val_source, val_split, seed, _, _ = _index_key(choice)
    train, val = _load_indexes(source, val_source, val_split, seed, None, 0)
    return next((r.label for r in train.records + val.records if r.path == path), None)


def _active_corrections() -> str | None:
    path = corrections_file()
    return str(path) if path is not None and path.exists() else None


def dataset_indexes(quiet: bool = False) -> tuple[DatasetIndex, DatasetIndex] | None:
    """Training and validation indexes of the chosen dataset (with its corrections).

    Errors are shown, not raised; ``quiet`` leaves the showing to the page (the sidebar uses it,
    so a broken dataset is reported once, where the user is looking).
    """
    choice = dataset()
    if choice is None:
        return None
    try:
        return _load_indexes(*_index_key(choice), None if quiet else "Reading the dataset")
    except WarmstartError as exc:
        if not quiet:
            st.error(str(exc))
        return None


def dataset_summary() -> DatasetSummary | None:
    """Counts, skipped files and warnings (imbalance, duplicates) of the chosen dataset, or None without one."""
    choice = dataset()
    if choice is None or dataset_indexes(quiet=True) is None:
        return None
    return _summary(*_index_key(choice))


def _index_key(choice: DatasetChoice) -> tuple[str, str | None, float, int, str | None, int]:
    """What decides the chosen dataset's indexes: source, validation source, split, seed and the corrections
    file with its modification time (so every edit of it reads the dataset again)."""
    values = settings()
    corrections = _active_corrections()
    stamp = Path(corrections).stat().st_mtime_ns if corrections else 0
    return choice.source, choice.val_source, values["val_split"], values["seed"], corrections, stamp


# -- settings ------------------------------------------------------------------------------


def _default_settings() -> dict[str, Any]:
    return recipe_from_config(TrainConfig().replace(**PRESETS["Quick"]))


def settings() -> dict[str, Any]:
    """Current settings; the first visit starts from the Quick preset."""
    if "settings" not in st.session_state:
        st.session_state["settings"] = _default_settings()
        st.session_state["preset"] = "Quick"
    return st.session_state["settings"]


def preset() -> str | None:
    """The preset the settings came from; None once a control was changed by hand (a custom recipe)."""
    settings()
    return st.session_state.get("preset")


_NOT_RECIPE = {"val_split", "seed", "device", "backbone"}


def update_setting(name: str, value: Any) -> None:
    settings()[name] = value
    if name not in _NOT_RECIPE:
        st.session_state["preset"] = None  # a hand-changed control means a custom recipe
    _save_recipe()


def apply_preset(name: str) -> None:
    """Fill every control from preset ``name`` (keeps backbone, seed and validation split); Auto also
    switches on the automatic backbone, every other preset switches it off."""
    current = settings()
    preset = recipe_from_config(TrainConfig().replace(**PRESETS[name]))
    keep = {"backbone", "seed", "val_split", "device"}
    current.update({k: v for k, v in preset.items() if k not in keep})
    current["backbone_auto"] = PRESETS[name].get("backbone") == AUTO_BACKBONE
    for key in [*current, "lr_auto"]:
        st.session_state.pop(f"w_{key}", None)  # widgets re-seed from the new values
    st.session_state["preset"] = name
    mark_done("Settings")
    _save_recipe()


def widget_key(name: str) -> str:
    """Key for the widget of setting ``name``, seeded from the current value."""
    key = f"w_{name}"
    if key not in st.session_state:
        st.session_state[key] = settings()[name]
    return key


def sync_widget(name: str) -> None:
    """on_change callback: copy widget ``name``'s value into the settings."""
    update_setting(name, st.session_state[f"w_{name}"])


def auto_backbone() -> bool:
    """Whether the recipe lets a shoot-out choose the backbone when training starts (the Auto recipe).

    Kept beside the ``backbone`` setting, which stays a real name: previews, the LR finder and the
    health check use that one; only the config that trains says ``auto`` (:func:`training_config`).
    """
    return bool(settings().get("backbone_auto", False))


def backbone_key() -> str:
    """Key of the Backbone page's picker, whose options are ``auto`` and the backbones' names."""
    if "w_backbone" not in st.session_state:
        st.session_state["w_backbone"] = AUTO_BACKBONE if auto_backbone() else settings()["backbone"]
    return "w_backbone"


def sync_backbone() -> None:
    """on_change of the picker: ``auto`` switches the automatic choice on (a recipe change, like any other
    control); a name becomes the backbone and switches it off."""
    picked = st.session_state["w_backbone"]
    if picked == AUTO_BACKBONE:
        update_setting("backbone_auto", True)
        return
    if auto_backbone():
        update_setting("backbone_auto", False)
    update_setting("backbone", picked)


def use_backbone(name: str) -> None:
    """Train ``name`` from now on (the shoot-out's "Use" button)."""
    st.session_state.pop("w_backbone", None)  # the picker re-seeds from the new value
    if auto_backbone():
        update_setting("backbone_auto", False)
    update_setting("backbone", name)


_DEFAULT_MANUAL_LR = 3e-3  # where the learning-rate box starts when automatic is switched off


def lr_auto_key() -> str:
    """Key of the "Automatic learning rate" checkbox, seeded from whether the rate is unset."""
    if "w_lr_auto" not in st.session_state:
        st.session_state["w_lr_auto"] = settings()["lr"] is None
    return "w_lr_auto"


def sync_lr_auto() -> None:
    """on_change of the checkbox: automatic means no rate; manual starts the rate box at 3e-3."""
    update_setting("lr", None if st.session_state["w_lr_auto"] else _DEFAULT_MANUAL_LR)
    st.session_state.pop("w_lr", None)  # the rate box re-seeds from the new value


def use_lr(value: float) -> None:
    """Switch to a manual learning rate of ``value`` (two significant digits), as the LR finder suggests."""
    st.session_state["w_lr_auto"] = False
    update_setting("lr", float(f"{value:.2g}"))
    st.session_state.pop("w_lr", None)


def image_size_key() -> str:
    """Key of the image-size box, where 0 stands for the backbone's own size (setting None)."""
    if "w_image_size" not in st.session_state:
        st.session_state["w_image_size"] = settings()["image_size"] or 0
    return "w_image_size"


def sync_image_size() -> None:
    """on_change of the image-size box."""
    update_setting("image_size", st.session_state["w_image_size"] or None)


def ema_key() -> str:
    """Key of the weight-averaging checkbox, checked while the setting ``ema_decay`` is above 0."""
    if "w_ema_decay" not in st.session_state:
        st.session_state["w_ema_decay"] = settings()["ema_decay"] > 0
    return "w_ema_decay"


def sync_ema() -> None:
    """on_change of the weight-averaging checkbox."""
    update_setting("ema_decay", DEFAULT_EMA_DECAY if st.session_state["w_ema_decay"] else 0.0)


def config() -> TrainConfig:
    """The TrainConfig for the current dataset and settings (raises WarmstartError if invalid); with an
    unlabelled pool, the pool images labelled so far join training."""
    choice = dataset()
    chosen = config_from_recipe(settings(), choice.source if choice else "", choice.val_source if choice else None,
                                _active_corrections())
    pool = pool_folder()
    return chosen.replace(unlabeled=str(pool)) if pool is not None else chosen


def training_config() -> TrainConfig:
    """:func:`config` as a run trains it: with the Auto recipe its backbone is ``auto``, which the run's
    worker resolves before training (the run's config then names the backbone it chose)."""
    chosen = config()
    return chosen.replace(backbone=AUTO_BACKBONE) if auto_backbone() else chosen


# -- the unlabelled pool ---------------------------------------------------------------------


def pool_folder() -> Path | None:
    """The open project's unlabelled pool (None before images were added to it)."""
    choice = dataset()
    return Path(choice.pool) if choice is not None and choice.pool and Path(choice.pool).is_dir() else None


def pool_target() -> Path:
    """Where the open project's pool lives (the folder may not exist yet)."""
    return project().uploads / "pool"


def record_pool(folder: Path) -> None:
    """Make ``folder`` the open project's pool: called once images are in it, so an upload that
    added nothing never leaves an empty pool that every run would then have to read."""
    chosen = project()
    if chosen.dataset.pool != str(folder):
        chosen.set_dataset(dataclasses.replace(chosen.dataset, pool=str(folder)))


def suggestion_file() -> Path:
    """Where the open project keeps the images proposed for labelling, so a refresh shows the same batch."""
    return project().path / "pool-suggestion.json"


def save_suggestion(chosen: Suggestion, run: RunDir | None) -> None:
    """Keep a proposed batch (and the run it came from) in the open project."""
    atomic_write_json(suggestion_file(), {"paths": chosen.paths, "strategy": chosen.strategy, "scores": chosen.scores,
                                          "run": display_name(run) if run else None})


def saved_suggestion(present: set[str]) -> tuple[Suggestion, str | None] | None:
    """The kept batch (images since removed from the pool left out) and the name of its run; None without one."""
    try:
        raw = json.loads(suggestion_file().read_text(encoding="utf-8"))
        return Suggestion([p for p in raw["paths"] if p in present], str(raw["strategy"])), raw.get("run")
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- journey -------------------------------------------------------------------------------


def mark_done(step: str) -> None:
    done = st.session_state.setdefault("done", set())
    if step not in done:
        done.add(step)
        _save_recipe()


def is_done(step: str) -> bool:
    if step == "Data":
        return dataset() is not None
    return step in st.session_state.get("done", set())


def current_job():
    """This browser session's latest job, else the latest of the open project (after a refresh or in a new tab)."""
    manager = job_manager()
    own = st.session_state.get("own_job")
    return (manager.get(own) if own else None) or manager.latest(within=run_store().root)


def adopt_job(job) -> None:
    """Make ``job`` the one this session follows."""
    st.session_state["own_job"] = str(job.run.path)
    select_run(job.run)


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def training_processes() -> int:
    """How many processes the next run trains on: one per GPU chosen on the Settings page (all of
    them unless the user chose fewer); one on a machine without several GPUs."""
    count = gpu_count()
    if count < 2:
        return 1
    return max(1, min(count, int(st.session_state.get("devices", count))))


def keep_training_processes() -> None:
    """The Settings widget's choice, kept after the page (and with it the widget's own key) is gone."""
    st.session_state["devices"] = st.session_state["w_devices"]


def start_training(config: TrainConfig, label: str | None = None, store: RunStore | None = None):
    """Train ``config`` in ``store`` (by default the open project's runs; queued when every slot
    is busy) on the chosen number of GPUs, and follow it."""
    label = label or ("auto" if config.backbone == AUTO_BACKBONE else None)  # the run's name keeps "auto" after it chose
    job = job_manager().start(config, label=label, store=store or run_store(), processes=training_processes())
    adopt_job(job)
    return job


def train_and_follow(make_config: Callable[[], TrainConfig], label: str | None = None, store: RunStore | None = None) -> None:
    """Start (or queue) the run ``make_config()`` describes and open the Train page to follow it. A config
    that cannot be made, or a run that cannot start, shows its one sentence where the button was instead."""
    try:
        start_training(make_config(), label, store)
    except WarmstartError as exc:
        st.error(str(exc))
        return
    st.switch_page("app_pages/train.py")


# -- runs ------------------------------------------------------------------------------------


def run_store() -> RunStore:
    """The open project's runs; without a project, the runs made outside any project (older
    versions, or the CLI without ``--project``)."""
    chosen = project()
    return chosen.run_store() if chosen is not None else RunStore(user_root() / "runs")


@dataclass(frozen=True)
class RunEntry:
    """A run as a picker lists it: the folder, and the project it belongs to."""

    run: RunDir
    project: str
    dataset: str | None = None  # the project's name for its dataset (a run's own config only knows a path)

    @property
    def label(self) -> str:
        return display_name(self.run)


def all_runs() -> list[RunEntry]:
    """Every run of this person: each project's, then those outside any project."""
    entries = [RunEntry(run, p.name, p.dataset.name if p.dataset else None)
               for p in project_store().projects() for run in p.run_store().runs()]
    entries += [RunEntry(run, "no project") for run in RunStore(user_root() / "runs").runs()]
    return entries


def listed_runs(every_project: bool) -> list[RunEntry]:
    """The open project's runs, or (``every_project``) all of this person's runs."""
    if every_project:
        return all_runs()
    chosen = project()
    dataset_label = chosen.dataset.name if chosen is not None and chosen.dataset is not None else None
    return [RunEntry(run, chosen.name if chosen else "no project", dataset_label) for run in run_store().runs()]


def choose_run(label: str, key: str, usable, empty_message: str) -> RunDir:
    """A run picker over the open project's runs for which ``usable(run)`` holds, with an "All
    projects" switch; stops the page when there are none. Starts at the run selected elsewhere
    in the app and makes the choice the selected run."""
    every = st.toggle("All projects", key=f"{key}_all", help="List the runs of every project, not only this one's.")
    entries = [e for e in listed_runs(every) if usable(e.run)]
    if not entries:
        elsewhere = not every and any(usable(e.run) for e in all_runs())
        st.info(empty_message + (" Other projects have runs: switch on “All projects” above." if elsewhere else ""))
        st.stop()
    paths = [str(e.run.path) for e in entries]
    names = {str(e.run.path): (f"{e.project} · {e.label}" if every else e.label) for e in entries}
    preferred = selected_run()
    path = st.selectbox(label, paths, index=paths.index(preferred) if preferred in paths else 0, key=key,
                        format_func=names.get)
    select_run(RunDir(path))
    return RunDir(path)


def selected_run() -> str | None:
    """The folder of the run chosen on another page (so Evaluate, Predict and Export agree)."""
    return st.session_state.get("selected_run")


def select_run(run: RunDir | None) -> None:
    st.session_state["selected_run"] = str(run.path) if run is not None else None


# -- what pages keep between runs ------------------------------------------------------------

T = TypeVar("T")


class SessionValue(Generic[T]):
    """A value a page keeps for the session, under a key that only this module names.

    ``key`` may also be given to a widget (``key=state.gallery_filter.key``) when code sets
    that widget's value, as a chart click choosing the gallery filter does.
    """

    def __init__(self, key: str, default: T | None = None) -> None:
        self.key = key
        self.default = default

    def get(self) -> T | None:
        return st.session_state.get(self.key, self.default)

    def set(self, value: T) -> None:
        st.session_state[self.key] = value

    def setdefault(self, value: T) -> T:
        """Seed the value (a widget's, before it renders) unless it has one."""
        return st.session_state.setdefault(self.key, value)

    def take(self) -> T | None:
        """Read and forget: for a message set before a rerun and shown once after it."""
        return st.session_state.pop(self.key, self.default)

    def clear(self) -> None:
        st.session_state.pop(self.key, None)


class ValueFor(Generic[T]):
    """A value that belongs to one dataset or run (its owner): read back only while that owner
    is still the one chosen, so a result never shows under another dataset or run."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get(self, owner: object) -> T | None:
        stored = st.session_state.get(self.key)
        return stored[1] if stored is not None and stored[0] == owner else None

    def set(self, owner: object, value: T) -> None:
        st.session_state[self.key] = (owner, value)


@dataclass(frozen=True)
class ShootoutOutcome:
    """The backbone shoot-out as the Backbone page shows it: one row per backbone, and the recommended
    backbone with the sentence that says why (None when none could be tried)."""

    rows: list[dict[str, Any]]
    seconds: float
    recommended: str | None = None
    reason: str | None = None


# Home
home_error: SessionValue[str] = SessionValue("home_error")  # shown once, after the sample failed to load
pending_page: SessionValue[str] = SessionValue("go_to")  # page to switch to after a button's callback

# Data
manual_folder: SessionValue[str] = SessionValue("manual_folder")  # where "Images per class" uploads go
manual_round: SessionValue[int] = SessionValue("manual_round", 0)  # bumped to empty the uploader after each class
data_tab: SessionValue[str] = SessionValue("data_tab")  # the tab Data opens on ("Upload my images" on Home)
data_note: SessionValue[str] = SessionValue("data_note")  # "started a new project", shown once after the rerun
manual_note: SessionValue[tuple[str, list[str]]] = SessionValue("manual_note")  # (what was added, refusals), shown once
health_report: ValueFor[HealthReport] = ValueFor("health")  # owner: the dataset's source
pool_note: SessionValue[tuple[str, list[str]]] = SessionValue("pool_note")  # (images added to the pool, refusals), shown once
pool_round: SessionValue[int] = SessionValue("pool_round", 0)  # bumped to empty the pool uploader after each batch
pool_error: SessionValue[str] = SessionValue("pool_error")  # a label that could not be saved, shown once after the rerun

# Backbone
shootout_result: ValueFor[ShootoutOutcome] = ValueFor("shootout_result")  # owner: the DatasetChoice

# Settings
preview_seed: SessionValue[int] = SessionValue("preview_seed", 0)  # bumped by "New random views"
lr_finder_result: SessionValue[LRFinderResult | str] = SessionValue("lr_result")  # the result, or why it failed

# Evaluate
gallery_filter: SessionValue[str] = SessionValue("gallery_filter")  # the gallery's filter box
applied_cell: SessionValue[tuple[str, str]] = SessionValue("cm_applied")  # confusion-matrix click already applied
fix_error: SessionValue[str] = SessionValue("fix_error")  # a correction that could not be saved, shown once
tta_comparison: ValueFor[TTAComparison] = ValueFor("tta_comparison")  # owner: (run folder, checkpoint time)
embedding_map_open: ValueFor[bool] = ValueFor("map_for")  # owner: the run's folder


def relabel_box(image_path: str) -> SessionValue[str]:
    """The gallery's label box of one image (its widget key and value)."""
    return SessionValue(f"fix_{hashlib.sha256(image_path.encode()).hexdigest()[:16]}")


# Predict
batch_table: SessionValue[pd.DataFrame] = SessionValue("batch_table")  # predictions for a zip or folder
batch_tta: SessionValue[bool] = SessionValue("batch_tta", False)  # whether that table was predicted with TTA
predict_tta: SessionValue[bool] = SessionValue("predict_tta", False)  # the TTA switch, kept after leaving the page
PREDICT_TTA_SWITCH = "w_predict_tta"


def keep_predict_tta() -> None:
    """on_change of the Predict page's TTA switch: the choice outlives the page (and with it the switch's key)."""
    predict_tta.set(st.session_state[PREDICT_TTA_SWITCH])


# Export
export_check: ValueFor[list[FormatAgreement]] = ValueFor("export_check")  # owner: the run's folder

# Compare
managed_run: SessionValue[str] = SessionValue("manage_run")  # the "Manage runs" picker
distil_costs: ValueFor[list] = ValueFor("distil_costs")  # RunCost per row; owner: the rows' (run folder, checkpoint time)
