"""The one place that owns session state: typed accessors instead of string keys on pages.

Settings live in a plain dict (``settings``) that survives page switches; widgets use keys
``w_<setting>`` that are seeded from it before they render and copied back on change, so a
preset button can fill every control at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from transfer_core import AugmentConfig, DatasetIndex, RunStore, TrainConfig, WarmstartError, load_train_val
from transfer_core.data.corrections import corrections_path_for
from transfer_core.runs.store import atomic_write_json
from transfer_core.presets import PRESETS
from transfer_core.workspace import home

from .jobs import JobManager

_AUGMENT_FIELDS = [f.name for f in dataclasses.fields(AugmentConfig)]
_CONFIG_FIELDS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "val_data", "augment", "corrections")]
STEPS = ["Data", "Backbone", "Settings", "Train", "Evaluate"]


def workspace() -> Path:
    """The engine's workspace (runs, uploads, samples, extracted zips), created on first use."""
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    return root


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
