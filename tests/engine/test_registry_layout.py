"""The backbone registry's modules: one job each, small, and registration on import without a cycle."""

import ast
from pathlib import Path

import transfer_core
from transfer_core import WeightsSource, list_backbones

MODELS = Path(transfer_core.__file__).parent / "models"


def test_model_modules_stay_small():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in MODELS.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_the_registry_registers_the_catalogues_which_do_not_import_it():
    for name in ("backbone.py", "catalogs.py"):
        tree = ast.parse((MODELS / name).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "registry" not in imported, f"{name} imports the registry, which imports it: a cycle"
    assert {WeightsSource.BUNDLED, WeightsSource.TORCHVISION} <= {spec.source for spec in list_backbones()}
