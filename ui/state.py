"""The one place that owns session state: typed accessors instead of string keys on pages.

Settings live in a plain dict (``settings``) that survives page switches; widgets use keys
``w_<setting>`` that are seeded from it before they render and copied back on change, so a
preset button can fill every control at once.

What a page keeps between its runs (a result, a message for the next run, a widget the code
sets) is a :class:`SessionValue` or a :class:`ValueFor` declared at the end of this module;
pages use those objects and never name a session-state key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
import streamlit as st

from transfer_core import (
    PRESETS,
    AugmentConfig,
    DatasetIndex,
    FormatAgreement,
    HealthReport,
    LRFinderResult,
    RunStore,
    TrainConfig,
    WarmstartError,
    atomic_write_json,
    corrections_path_for,
    load_train_val,
    workspace_home,
)

from .jobs import JobManager

_AUGMENT_FIELDS = [f.name for f in dataclasses.fields(AugmentConfig)]
_CONFIG_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "val_data", "augment", "corrections")]
STEPS = ["Data", "Backbone", "Settings", "Train", "Evaluate"]


def workspace() -> Path:
    """The engine's workspace (runs, uploads, samples, extracted zips), created on first use."""
    root = workspace_home()
    root.mkdir(parents=True, exist_ok=True)
    return root


def user_root() -> Path:
    """The folder that holds the signed-in person's projects: the workspace itself when the
    server is single-user (no classroom mode). Classroom mode gives each visitor their own."""
    return workspace()


@st.cache_resource
def job_manager() -> JobManager:
    """The process-wide job manager shared by every session and tab."""
    return JobManager(RunStore(workspace() / "runs"), max_concurrent=int(os.environ.get("WARMSTART_MAX_RUNS", "1")))


def run_store() -> RunStore:
    return job_manager().store


# -- dataset -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetChoice:
    name: str
    source: str
    val_source: str | None = None


def _choice_id(choice: DatasetChoice) -> str:
    return hashlib.sha256(f"{choice.source}|{choice.val_source}".encode()).hexdigest()[:16]


def _choice_file(choice_id: str) -> Path:
    return workspace() / "datasets" / f"{choice_id}.json"


def dataset() -> DatasetChoice | None:
    """The session's dataset; after a browser refresh, the one named by the URL's ``?dataset=`` key."""
    choice = st.session_state.get("dataset")
    if choice is None:
        choice_id = st.query_params.get("dataset", "")
        if choice_id.isalnum() and _choice_file(choice_id).exists():
            try:
                choice = DatasetChoice(**json.loads(_choice_file(choice_id).read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                choice = None
            st.session_state["dataset"] = choice
    return choice


def set_dataset(choice: DatasetChoice | None) -> None:
    st.session_state["dataset"] = choice
    st.session_state.pop("thumb_page", None)
    if choice is not None:
        try:
            atomic_write_json(_choice_file(_choice_id(choice)), dataclasses.asdict(choice))
        except OSError:
            pass  # only the refresh convenience is lost
    keep_dataset_in_url()


def keep_dataset_in_url() -> None:
    """Write the dataset's key into the URL on every run (navigation clears it), so a refresh keeps the dataset."""
    choice = st.session_state.get("dataset")
    if choice is not None:
        st.query_params["dataset"] = _choice_id(choice)


@st.cache_data(show_spinner="Reading images…", max_entries=8)
def _load_indexes(
    source: str, val_source: str | None, val_split: float, seed: int, corrections: str | None, stamp: int
) -> tuple[DatasetIndex, DatasetIndex]:
    """Cached indexes; ``stamp`` (the corrections file's mtime) is part of the key, so every edit shows (no ``_``)."""
    return load_train_val(source, val_source, val_split, seed, corrections=corrections)  # zips: where training looks too


def corrections_file() -> Path | None:
    """The chosen dataset's corrections file (it may not exist yet)."""
    choice = dataset()
    return corrections_path_for(choice.source) if choice else None


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
    values = settings()
    corrections = _active_corrections()
    stamp = Path(corrections).stat().st_mtime_ns if corrections else 0
    try:
        return _load_indexes(choice.source, choice.val_source, values["val_split"], values["seed"], corrections, stamp)
    except WarmstartError as exc:
        if not quiet:
            st.error(str(exc))
        return None


# -- settings ------------------------------------------------------------------------------


def _flatten(config: TrainConfig) -> dict[str, Any]:
    values = {name: getattr(config, name) for name in _CONFIG_FIELDS}
    values.update({f"aug_{name}": getattr(config.augment, name) for name in _AUGMENT_FIELDS})
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}


def settings() -> dict[str, Any]:
    """Current settings; the first visit starts from the Quick preset."""
    if "settings" not in st.session_state:
        st.session_state["settings"] = _flatten(TrainConfig().replace(**PRESETS["Quick"]))
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


def apply_preset(name: str) -> None:
    """Fill every control from preset ``name`` (keeps backbone, seed and validation split)."""
    current = settings()
    preset = _flatten(TrainConfig().replace(**PRESETS[name]))
    keep = {"backbone", "seed", "val_split", "device"}
    current.update({k: v for k, v in preset.items() if k not in keep})
    for key in [*current, "lr_auto"]:
        st.session_state.pop(f"w_{key}", None)  # widgets re-seed from the new values
    st.session_state["preset"] = name
    mark_done("Settings")


def widget_key(name: str) -> str:
    """Key for the widget of setting ``name``, seeded from the current value."""
    key = f"w_{name}"
    if key not in st.session_state:
        st.session_state[key] = settings()[name]
    return key


def sync_widget(name: str) -> None:
    """on_change callback: copy widget ``name``'s value into the settings."""
    update_setting(name, st.session_state[f"w_{name}"])


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


def config() -> TrainConfig:
    """The TrainConfig for the current dataset and settings (raises WarmstartError if invalid)."""
    values = dict(settings())
    augment = AugmentConfig(**{name: values.pop(f"aug_{name}") for name in _AUGMENT_FIELDS})
    choice = dataset()
    return TrainConfig(
        data=choice.source if choice else "",
        val_data=choice.val_source if choice else None,
        corrections=_active_corrections(),
        augment=augment,
        **values,
    )


# -- journey -------------------------------------------------------------------------------


def mark_done(step: str) -> None:
    st.session_state.setdefault("done", set()).add(step)


def is_done(step: str) -> bool:
    if step == "Data":
        return dataset() is not None
    return step in st.session_state.get("done", set())


def current_job():
    """This browser session's latest job, else the server's latest (after a refresh or in a new tab)."""
    manager = job_manager()
    own = st.session_state.get("own_job")
    return (manager.get(own) if own else None) or manager.latest()


def adopt_job(job) -> None:
    """Make ``job`` the one this session follows."""
    st.session_state["own_job"] = job.run.name
    select_run(job.run.name)


def choose_run(label: str, key: str, usable, empty_message: str):
    """A run picker over the store's runs for which ``usable(run)`` holds; stops the page when there are none.

    Starts at the run selected elsewhere in the app and makes the choice the selected run.
    """
    runs = [r for r in run_store().runs() if usable(r)]
    if not runs:
        st.info(empty_message)
        st.stop()
    names = [r.name for r in runs]
    preferred = selected_run()
    name = st.selectbox(label, names, index=names.index(preferred) if preferred in names else 0, key=key)
    select_run(name)
    return run_store().get(name)


def selected_run() -> str | None:
    return st.session_state.get("selected_run")


def select_run(name: str | None) -> None:
    st.session_state["selected_run"] = name


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
    """The backbone shoot-out as the Backbone page shows it: one row per backbone."""

    rows: list[dict[str, Any]]
    seconds: float


# Home
home_error: SessionValue[str] = SessionValue("home_error")  # shown once, after the sample failed to load
pending_page: SessionValue[str] = SessionValue("go_to")  # page to switch to after a button's callback

# Data
manual_folder: SessionValue[str] = SessionValue("manual_folder")  # where "Images per class" uploads go
manual_round: SessionValue[int] = SessionValue("manual_round", 0)  # bumped to empty the uploader after each class
manual_note: SessionValue[tuple[str, list[str]]] = SessionValue("manual_note")  # (what was added, refusals), shown once
health_report: ValueFor[HealthReport] = ValueFor("health")  # owner: the dataset's source

# Backbone
shootout_result: ValueFor[ShootoutOutcome] = ValueFor("shootout_result")  # owner: the DatasetChoice

# Settings
preview_seed: SessionValue[int] = SessionValue("preview_seed", 0)  # bumped by "New random views"
lr_finder_result: SessionValue[LRFinderResult | str] = SessionValue("lr_result")  # the result, or why it failed

# Evaluate
gallery_filter: SessionValue[str] = SessionValue("gallery_filter")  # the gallery's filter box
applied_cell: SessionValue[tuple[str, str]] = SessionValue("cm_applied")  # confusion-matrix click already applied
fix_error: SessionValue[str] = SessionValue("fix_error")  # a correction that could not be saved, shown once
embedding_map_open: ValueFor[bool] = ValueFor("map_for")  # owner: the run's name


def relabel_box(image_path: str) -> SessionValue[str]:
    """The gallery's label box of one image (its widget key and value)."""
    return SessionValue(f"fix_{hashlib.sha256(image_path.encode()).hexdigest()[:16]}")


# Predict
batch_table: SessionValue[pd.DataFrame] = SessionValue("batch_table")  # predictions for a zip or folder

# Export
export_check: ValueFor[list[FormatAgreement]] = ValueFor("export_check")  # owner: the run's name

# Compare
managed_run: SessionValue[str] = SessionValue("manage_run")  # the "Manage runs" picker
