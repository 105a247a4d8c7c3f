"""``train --project NAME``: command-line runs land in a project of the workspace, where the app lists them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfer_core import ProjectStore, RunDir, Trainer, recipe_from_config
from transfer_core.cli import main
from transfer_core.workspace import home
from warmstart.launcher import main as warmstart_main

from ..conftest import write_dataset

TINY_ARGS = ["--backbone", "tiny_cnn", "--epochs", "1", "--lr", "0.3", "--batch-size", "8", "--val-split", "0.3"]


def test_runs_with_project_land_in_that_project_and_join_it(color_dataset, capsys):
    assert main(["train", str(color_dataset), *TINY_ARGS, "--project", "demo"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("finished: val accuracy")
    runs_dir = home() / "projects" / "demo" / "runs"
    [first] = list(runs_dir.iterdir())
    assert first.name.endswith("-tiny_cnn-frozen") and first.name[:15].replace("-", "").isdigit()
    assert str(first / "report.json") in captured.out  # where the run went, as with --out
    assert str(first) in captured.err

    project = ProjectStore(home()).get("demo")
    assert project.name == "demo"
    assert (project.dataset.name, project.dataset.source) == ("colors", str(color_dataset))
    assert project.dataset.images == 30 and project.dataset.classes == ["blue", "green", "red"]
    assert project.recipe == recipe_from_config(RunDir(first).read_config())

    # The installed command forwards to the same CLI; the project is found by name (any case) and reused.
    assert warmstart_main(["train", str(color_dataset), *TINY_ARGS, "--epochs", "2", "--project", "DEMO"]) == 0
    capsys.readouterr()
    assert [p.slug for p in ProjectStore(home()).projects()] == ["demo"]
    runs = ProjectStore(home()).get("demo").run_store().runs()
    assert len(runs) == 2 and {r.status() for r in runs} == {"finished"}
    assert ProjectStore(home()).get("demo").recipe["epochs"] == 1  # an existing project keeps its recipe
    assert ProjectStore(home()).get("demo").summary().runs == 2


def test_a_new_project_gets_a_folder_from_its_name_and_the_projects_corrections_apply(color_dataset, tmp_path, capsys):
    assert main(["train", str(color_dataset), *TINY_ARGS, "--project", "My Colours!"]) == 0
    project = ProjectStore(home()).find("My Colours!")
    assert project.slug == "my-colours"
    blue = str(color_dataset / "blue" / "blue_0.png")
    project.corrections_file.write_text(json.dumps({"relabel": {}, "exclude": [blue]}))
    assert main(["train", str(color_dataset), *TINY_ARGS, "--project", "my-colours"]) == 0
    newest = project.run_store().runs()[0]
    assert newest.read_config().corrections == str(project.corrections_file)

    # A project holds one dataset: other data is refused, and nothing new is created.
    other = write_dataset(tmp_path / "other", per_class=3)
    capsys.readouterr()
    assert main(["train", str(other), *TINY_ARGS, "--project", "my-colours"]) == 2
    assert "holds one dataset" in capsys.readouterr().err
    assert len(project.run_store().runs()) == 2


def test_resume_with_project_continues_its_latest_stopped_run(tiny_config, color_dataset, capsys):
    assert main(["train", str(color_dataset), *TINY_ARGS, "--project", "demo", "--resume"]) == 2
    assert "no project 'demo'" in capsys.readouterr().err
    assert main(["train", str(color_dataset), *TINY_ARGS, "--project", "demo"]) == 0
    assert main(["train", str(color_dataset), "--project", "demo", "--resume"]) == 2
    assert "no stopped or interrupted run" in capsys.readouterr().err

    project = ProjectStore(home()).get("demo")
    config = tiny_config.replace(epochs=2)
    stopped = project.run_store().new_run(config, label="stopped")
    trainer = Trainer(config, stopped, [lambda e: trainer.request_stop() if e.kind == "epoch" and e.epoch == 1 else None])
    trainer.fit()
    assert stopped.status() == "stopped"

    assert main(["train", str(color_dataset), "--project", "demo", "--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("finished:") and str(stopped.path) in captured.out
    assert stopped.status() == "finished" and len(stopped.read_report()["history"]) == 2
    assert len(project.run_store().runs()) == 2  # resumed in place, no new folder


def test_bad_data_with_project_creates_nothing(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing"), "--project", "demo"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing"), "--backbone", "resnet1000", "--project", "demo"]) == 2
    assert "Unknown backbone" in capsys.readouterr().err
    assert ProjectStore(home()).projects() == [] and not (home() / "projects" / "demo").exists()


@pytest.mark.parametrize("where", [[], ["--out", "{tmp}/r", "--project", "demo"]], ids=["neither", "both"])
@pytest.mark.parametrize("command", [["-m", "transfer_core"], ["-m", "warmstart"]], ids=["python-m", "warmstart"])
def test_out_or_project_exactly_one_in_one_sentence(where, command, color_dataset, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in where]
    env = {**os.environ, "WARMSTART_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, *command, "train", str(color_dataset), *argv],
                          capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "exactly one of --out RUN_DIR" in done.stderr and "--project NAME" in done.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "home").exists()
