import zipfile
from pathlib import Path

import pytest

from transfer_core import TrainConfig, WarmstartError, load_dataset, load_train_val, split_train_val, summarize
from transfer_core.data.splits import load_run_split

from ..conftest import make_image, write_dataset, zip_folder


def test_folder_scan_skips_and_reports(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=4)
    (root / "red" / ".hidden.png").write_bytes(b"x")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "junk.png").write_bytes(b"x")
    (root / "red" / "notes.txt").write_text("hi")
    (root / "red" / "broken.jpg").write_bytes(b"not really a jpeg")
    make_image((1, 2, 3)).save(root / "blue" / "UPPER.JPEG", format="JPEG")
    (root / "empty_class").mkdir()
    (root / "green" / "deeper" / "deepest").mkdir(parents=True)
    (root / "green" / "deeper" / "deepest" / "notes.md").write_text("in a sub-folder of a class")
    index = load_dataset(root)
    assert index.classes == ["blue", "green", "red"]
    assert index.counts() == {"blue": 5, "green": 4, "red": 4}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "not an image type" in reasons["red/notes.txt"]
    assert "not a readable image" in reasons["red/broken.jpg"]
    assert "no usable images" in reasons["empty_class/"]
    assert "not an image type" in reasons["green/deeper/deepest/notes.md"]  # named from the dataset's folder
    assert not any("hidden" in p or "MACOSX" in p for p in reasons)


def test_missing_or_empty_folder_says_what_is_expected(tmp_path):
    with pytest.raises(WarmstartError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WarmstartError, match="one folder of images per class"):
        load_dataset(tmp_path / "empty")


def test_split_is_stratified_seeded_and_keeps_every_class(tmp_path):
    index = load_dataset(write_dataset(tmp_path / "d", per_class=10))
    train, val = split_train_val(index, 0.2, seed=3)
    assert val.counts() == {"blue": 2, "green": 2, "red": 2}
    assert train.counts() == {"blue": 8, "green": 8, "red": 8}
    again_train, again_val = split_train_val(index, 0.2, seed=3)
    assert [r.path for r in again_val.records] == [r.path for r in val.records]
    _, other = split_train_val(index, 0.2, seed=4)
    assert [r.path for r in other.records] != [r.path for r in val.records]
    assert not set(r.path for r in train.records) & set(r.path for r in val.records)


def test_train_val_layout_is_recognised(tmp_path):
    write_dataset(tmp_path / "d" / "train", per_class=4)
    write_dataset(tmp_path / "d" / "val", per_class=2)
    train, val = load_train_val(tmp_path / "d")
    assert len(train) == 12 and len(val) == 6


def test_validation_classes_must_exist_in_training(tmp_path):
    write_dataset(tmp_path / "t", per_class=3, colors={"a": (1, 1, 1), "b": (200, 200, 200)})
    write_dataset(tmp_path / "v", per_class=2, colors={"a": (1, 1, 1), "c": (100, 0, 0)})
    with pytest.raises(WarmstartError, match="no training images: c"):
        load_train_val(tmp_path / "t", tmp_path / "v")


def test_zip_is_extracted_safely(tmp_path):
    source = write_dataset(tmp_path / "src" / "photos", per_class=3)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*.png")):
            zf.write(path, path.relative_to(source.parent).as_posix())
        zf.writestr("../evil.png", b"x")
        zf.writestr("/abs.png", b"x")
        zf.writestr("photos/__MACOSX/._x.png", b"x")
        zf.writestr("photos/red/inner.zip", b"PK")
    index = load_dataset(archive, extract_dir=tmp_path / "extract")
    assert index.counts() == {"blue": 3, "green": 3, "red": 3}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "unsafe path" in reasons["../evil.png"]
    assert "unsafe path" in reasons["/abs.png"]
    assert "nested archives" in reasons["photos/red/inner.zip"]
    assert not (tmp_path / "evil.png").exists()
    # A second load reuses the extraction and reports the same skipped entries.
    assert {s.path for s in load_dataset(archive, extract_dir=tmp_path / "extract").skipped} == set(reasons)


def test_a_zip_is_extracted_once_under_the_workspace_home(tmp_path, monkeypatch):
    """The app and the engine resolve an uploaded zip to one folder, so they see the same files."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path / "home"))
    archive = zip_folder(write_dataset(tmp_path / "src" / "photos", per_class=3), tmp_path / "photos.zip")
    train, val = load_run_split(TrainConfig(data=str(archive), val_split=0.3))
    extracted = tmp_path / "home" / "extracted"
    assert len(train) + len(val) == 9
    assert all(Path(r.path).is_relative_to(extracted) for r in train.records + val.records)
    assert not (tmp_path / "user" / ".cache").exists()


def test_workspace_home_is_warmstart_home_or_the_repository_folder(tmp_path, monkeypatch):
    from transfer_core.workspace import home

    monkeypatch.setenv("WARMSTART_HOME", str(tmp_path / "elsewhere"))
    assert home() == tmp_path / "elsewhere"
    monkeypatch.delenv("WARMSTART_HOME")
    assert home() == Path(__file__).resolve().parents[2] / ".warmstart"


def test_not_a_zip_is_a_clear_error(tmp_path):
    bad = tmp_path / "data.zip"
    bad.write_text("nope")
    with pytest.raises(WarmstartError, match="not a readable zip"):
        load_dataset(bad)


def test_csv_manifest(tmp_path):
    root = write_dataset(tmp_path / "imgs", per_class=2)
    rows = ["path,label"] + [f"{p.relative_to(tmp_path).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    rows += ["imgs/missing.png,red", "../outside.png,red"]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    index = load_dataset(manifest)
    assert index.counts() == {"blue": 2, "green": 2, "red": 2}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "does not exist" in reasons["imgs/missing.png"]
    assert "outside" in reasons["../outside.png"]


def test_csv_without_required_columns(tmp_path):
    manifest = tmp_path / "labels.csv"
    manifest.write_text("file,category\na.png,x\n")
    with pytest.raises(WarmstartError, match="needs the columns 'path' and 'label'"):
        load_dataset(manifest)


def test_summary_warnings(tmp_path):
    colors = {"many": (1, 1, 1), "few": (200, 200, 200)}
    root = write_dataset(tmp_path / "d", per_class=2, colors=colors)
    for i in range(20):
        make_image((1, 1, 1), seed=100 + i).save(root / "many" / f"extra{i}.png")
    summary = summarize(load_dataset(root))
    assert summary.counts == {"few": 2, "many": 22}
    text = " ".join(summary.warnings)
    assert "fewer than 5 images" in text and "few (2)" in text
    assert "imbalanced 11:1" in text
    single = summarize(load_dataset(write_dataset(tmp_path / "s", per_class=6, colors={"only": (1, 1, 1)})))
    assert "Only one class" in single.warnings[0]
