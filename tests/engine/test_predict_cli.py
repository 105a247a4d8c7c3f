"""Prediction, evaluation and the command line, on a trained tiny run."""

import json
import subprocess
import sys

import pytest

from transfer_core import Predictor, Trainer, evaluate_run
from transfer_core.cli import main

from ..conftest import make_image


@pytest.fixture
def trained_run(tiny_config, tmp_path):
    Trainer(tiny_config.replace(epochs=6), tmp_path / "run").fit()
    return tmp_path / "run"


def test_predictor_ranks_classes_and_reports_bad_files(trained_run, tmp_path):
    red = tmp_path / "red.png"
    make_image((200, 40, 40), seed=99).save(red)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    predictions = Predictor.from_run(trained_run).predict_files([red, bad], top_k=2)
    assert predictions[0].top[0][0] == "red" and len(predictions[0].top) == 2
    assert sum(p for _, p in Predictor.from_run(trained_run).predict_files([red], top_k=3)[0].top) == pytest.approx(1, abs=1e-5)
    assert predictions[1].error and not predictions[1].top


def test_evaluate_run_matches_training_report(trained_run):
    from transfer_core import RunDir

    report = evaluate_run(trained_run)
    saved = RunDir(trained_run).read_report()
    assert report["val_accuracy"] == saved["val_accuracy"]
    assert report["confusion_matrix"] == saved["confusion_matrix"]


def test_cli_train_predict_evaluate_in_process(color_dataset, tmp_path, capsys):
    out = tmp_path / "cli-run"
    code = main(["train", str(color_dataset), "--backbone", "tiny_cnn", "--epochs", "4", "--lr", "0.3",
                 "--batch-size", "8", "--augment", "light", "--val-split", "0.3", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("finished: val accuracy")
    assert "epoch 4/4" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["augment"]["hflip"] == 0.5

    assert main(["predict", str(out), str(color_dataset / "blue" / "blue_0.png"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["top"][0]["class"] == "blue"

    assert main(["evaluate", str(out)]) == 0
    assert "macro-F1" in capsys.readouterr().out

    # A whole folder into a CSV; then every export format, checked against the engine, packed into a zip.
    table = tmp_path / "predictions.csv"
    assert main(["predict", str(out), str(color_dataset), "--csv", str(table)]) == 0
    capsys.readouterr()
    rows = table.read_text().splitlines()
    assert rows[0].startswith("file,predicted,probability") and len(rows) == 31
    assert main(["export", str(out), "--zip", str(tmp_path / "model.zip")]) == 0
    printed = capsys.readouterr().out
    assert "onnx: agrees with the engine" in printed and "torchscript: agrees with the engine" in printed
    assert (tmp_path / "model.zip").stat().st_size > 0
    assert main(["export", str(out), "--format", "pickle"]) == 2
    assert "Unknown export format" in capsys.readouterr().err

    # The same folder again without --resume is refused; a finished run cannot be resumed.
    assert main(["train", str(color_dataset), "--backbone", "tiny_cnn", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["train", str(color_dataset), "--out", str(out), "--resume"]) == 2
    assert "already completed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "/no/such/folder", "--out", "{tmp}/r"], "does not exist"),
        (["train", "{data}", "--backbone", "resnet1000", "--out", "{tmp}/r"], "Unknown backbone"),
        (["train", "{data}", "--epochs", "0", "--out", "{tmp}/r"], "epochs must be at least 1"),
        (["train", "{data}", "--device", "cuda", "--out", "{tmp}/r"], None),
        (["predict", "{tmp}/missing-run", "x.jpg"], "does not exist"),
        (["evaluate", "{tmp}"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_2_with_one_sentence(args, words, color_dataset, tmp_path):
    argv = [a.format(tmp=tmp_path, data=color_dataset) for a in args]
    done = subprocess.run([sys.executable, "-m", "transfer_core", *argv], capture_output=True, text=True, timeout=120)
    if words is None:  # cuda: fine on a GPU machine, a clear error elsewhere
        import torch

        if torch.cuda.is_available():
            return
        words = "no CUDA GPU"
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_help_for_every_command():
    for command in ("backbones", "train", "evaluate", "predict", "export"):
        done = subprocess.run([sys.executable, "-m", "transfer_core", command, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout


def test_cli_backbones_table():
    done = subprocess.run([sys.executable, "-m", "transfer_core", "backbones"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "efficientnet_lite0" in done.stdout and "bundled" in done.stdout and "vit_b_16" in done.stdout
