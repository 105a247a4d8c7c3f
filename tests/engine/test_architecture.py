"""Conventions the engine's shape promises, checked on its source (these fail when someone forks a loop)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "transfer_core"
MODULES = sorted(ENGINE.rglob("*.py"))


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def test_one_optimiser_step_in_the_whole_engine():
    """Epochs, head warm-up and the LR finder all train through training/loop.py."""
    steps = [
        (path.relative_to(ENGINE).as_posix(), node.lineno)
        for path in MODULES
        for node in _calls(path)
        if _dotted(node.func).endswith("optimizer.step")
    ]
    assert [where for where, _ in steps] == ["training/loop.py"], steps


def test_autocast_and_no_grad_only_in_the_inference_function():
    """Validation, features, prediction and export checks share one inference path (same numbers on CUDA)."""
    allowed = {"features/inference.py", "features/cpu_runtime.py"}  # the function and the runtime it picks
    found = set()
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        if "torch.autocast(" in text or "torch.no_grad" in text:
            found.add(path.relative_to(ENGINE).as_posix())
    # export.py traces a model for TorchScript/ONNX files under no_grad: that writes files, it is not inference.
    assert found - {"deploy/export.py"} == allowed


def test_nothing_in_the_engine_reseeds_or_reads_the_process_wide_generator():
    """Runs own their generators (transfer_core/randomness.py lends them under a lock)."""
    forbidden = ("torch.manual_seed", "torch.random.manual_seed", "torch.seed", "torch.set_rng_state", "torch.get_rng_state",
                 "np.random.seed", "random.seed", "torch.random.get_rng_state", "torch.random.set_rng_state")
    offenders = [
        f"{path.relative_to(ENGINE).as_posix()}:{node.lineno} {_dotted(node.func)}"
        for path in MODULES
        if path.name != "randomness.py"
        for node in _calls(path)
        if _dotted(node.func) in forbidden
    ]
    assert offenders == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ENGINE).as_posix())
def test_engine_modules_stay_small_and_never_import_streamlit(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400, f"{path.name} has grown past ~400 lines; split it by job"
    imports = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in imports if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in imports if isinstance(n, ast.ImportFrom)]
    assert not any(name.split(".")[0] == "streamlit" for name in names)
