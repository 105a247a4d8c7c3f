"""The Export page's int8 file and the measured cost of every file."""

from __future__ import annotations

from .test_pages import _goto, _no_exception


def test_export_shows_the_int8_check_and_what_each_file_costs(app, finished_run):
    app.run()
    at = _goto(app, "export")
    assert "onnx-int8" in at.multiselect(key="export_formats").value  # offered and chosen by default
    at.button(key="do_export").click().run()
    _no_exception(at)
    messages = [m.value for m in [*at.success, *at.warning, *at.error]]
    assert any(m.startswith("onnx-int8: the same class as the float model on") for m in messages), messages
    table = at.dataframe[0].value
    assert list(table["format"]) == ["onnx", "onnx-int8", "torchscript", "safetensors"]
    assert (table["ms per image, batch 1"] > 0).all() and table["size"].str.endswith(("kB", "MB")).all()
    card = (finished_run.path / "export" / "MODEL_CARD.md").read_text()
    assert "## Deployment (measured when exported)" in card
