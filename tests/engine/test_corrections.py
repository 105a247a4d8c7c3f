"""Corrections remember each image's label in the dataset itself, whatever label a page shows it with."""

from __future__ import annotations

from transfer_core import Corrections


def test_a_corrected_label_shown_by_a_retrained_run_is_not_mistaken_for_the_original(tmp_path):
    """After retraining with x relabelled A → B, Evaluate shows x as B. Picking C and then B again
    must keep the correction (B), and only A, the dataset's own label, removes it, even from a reloaded file."""
    fixes = Corrections()
    fixes.set_label("x.png", "B", original="A")  # Data page: the folder says A
    fixes.set_label("x.png", "C", original="B")  # Evaluate of the retrained run: its label is B
    fixes.set_label("x.png", "B", original="B")
    assert fixes.relabel == {"x.png": "B"}
    fixes.save(tmp_path / "c.json")
    again = Corrections.load(tmp_path / "c.json")
    again.set_label("x.png", "B", original="B")
    assert again.relabel == {"x.png": "B"}
    again.set_label("x.png", "A", original="B")
    assert again.relabel == {} and len(again) == 0
    again.save(tmp_path / "c.json")
    assert Corrections.load(tmp_path / "c.json").relabel == {}
