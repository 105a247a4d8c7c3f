"""Hostile archives, odd dataset shapes and oversized uploads: refused or reported, never fatal."""

from __future__ import annotations

import io
import zipfile

import pytest

from transfer_core import Trainer, TrainConfig, WarmstartError, load_dataset, summarize
from transfer_core.data.archives import extract_zip
from transfer_core.limits import InputLimits

from ..conftest import TINY, make_image, write_dataset
from . import builders


def _png(color=(200, 40, 40), seed=0) -> bytes:
    buffer = io.BytesIO()
    make_image(color, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def _good_entries(prefix: str = "set/") -> dict[str, bytes]:
    return {f"{prefix}{label}/{i}.png": _png(color, seed=i) for label, color in (("cats", (200, 40, 40)), ("dogs", (40, 40, 200))) for i in range(3)}


def test_hostile_entries_are_skipped_and_named_while_the_rest_extracts(tmp_path):
    entries = {
        **_good_entries(),
        "../escape.png": _png(),
        "/etc/absolute.png": _png(),
        "C:/windows/drive.png": _png(),
        "set/cats/inner.zip": b"PK\x05\x06" + b"\x00" * 18,
        "set/__MACOSX/cats/._0.png": b"\x00",
        "set/cats/.hidden.png": _png(),
        "set/dogs/readme.md": b"# hi",
    }
    archive = builders.zip_of(tmp_path / "upload.zip", entries, symlinks={"set/cats/link.png": "/etc/passwd"})
    index = load_dataset(archive, extract_dir=tmp_path / "x")
    assert index.counts() == {"cats": 3, "dogs": 3}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "unsafe path" in reasons["../escape.png"]
    assert "unsafe path" in reasons["/etc/absolute.png"]
    assert "unsafe path" in reasons["C:/windows/drive.png"]
    assert "symbolic links" in reasons["set/cats/link.png"]
    assert "nested archives" in reasons["set/cats/inner.zip"]
    assert "not an image type (.md)" in reasons["set/dogs/readme.md"]
    assert not any("MACOSX" in p or "hidden" in p for p in reasons)
    assert not (tmp_path / "escape.png").exists() and not list((tmp_path / "x").rglob("link.png"))


def test_zip_bombs_are_refused_before_extraction(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("set/cats/huge.png", b"\x00" * (3 * 1024**2))  # 3 MB of zeros compress ~1000:1
    with pytest.raises(WarmstartError, match=r"would extract to 3 MB, above the limit of 1 MB \(WARMSTART_MAX_ARCHIVE_MB\)"):
        extract_zip(bomb, tmp_path / "x", InputLimits(max_archive_bytes=1024**2))
    assert not list((tmp_path / "x").rglob("*.png")) if (tmp_path / "x").exists() else True
    # Under the size limit, the ratio check still refuses the entry (and names it).
    index_dir, skipped = extract_zip(bomb, tmp_path / "y", InputLimits())
    assert skipped[0].path == "set/cats/huge.png" and "zip bomb" in skipped[0].reason
    assert not list(index_dir.rglob("huge.png"))

    many = builders.zip_of(tmp_path / "many.zip", {f"set/a/{i}.png": b"x" for i in range(30)})
    with pytest.raises(WarmstartError, match=r"holds 30 files, above the limit of 10 \(WARMSTART_MAX_ARCHIVE_FILES\)"):
        extract_zip(many, tmp_path / "z", InputLimits(max_archive_files=10))


def test_an_entry_that_lies_about_its_size_is_cut_and_skipped(tmp_path):
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("set/a/big.png", b"\x00" * 100_000)
        zf.writestr("set/a/ok.png", _png())
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central "uncompressed size"
        struct.pack_into("<I", data, data.find(signature) + offset, 1000)
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(data))
    folder, skipped = extract_zip(archive, tmp_path / "x", InputLimits(max_compression_ratio=1e9))
    assert skipped[0].path == "set/a/big.png" and "damaged entry in the archive (Bad CRC-32" in skipped[0].reason
    assert [p.name for p in folder.rglob("*.png")] == ["ok.png"]


def test_archive_limits_come_from_the_environment(tmp_path, monkeypatch):
    archive = builders.zip_of(tmp_path / "a.zip", _good_entries())
    monkeypatch.setenv("WARMSTART_MAX_ARCHIVE_FILES", "2")
    with pytest.raises(WarmstartError, match="above the limit of 2"):
        load_dataset(archive, extract_dir=tmp_path / "x")
    monkeypatch.delenv("WARMSTART_MAX_ARCHIVE_FILES")
    assert len(load_dataset(archive, extract_dir=tmp_path / "x")) == 6


def test_a_damaged_zip_is_a_clear_error(tmp_path):
    archive = builders.zip_of(tmp_path / "a.zip", _good_entries())
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 3])
    with pytest.raises(WarmstartError, match=r"'a.zip' is not a readable zip file"):
        load_dataset(archive, extract_dir=tmp_path / "x")


def test_identical_images_in_two_classes_are_reported(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=5)
    (root / "blue" / "copy of red.png").write_bytes((root / "red" / "red_0.png").read_bytes())
    (root / "red" / "again.png").write_bytes((root / "red" / "red_1.png").read_bytes())
    text = " ".join(summarize(load_dataset(root)).warnings)
    assert "1 image(s) appear as identical files in more than one class" in text
    assert "'copy of red.png' (blue)" in text and "'red_0.png' (red)" in text
    assert "1 file(s) are exact copies of another image in the same class" in text


def test_one_class_or_empty_classes(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=6, colors={"only": (1, 2, 3)})
    (root / "empty").mkdir()
    index = load_dataset(root)
    assert any(s.path == "empty/" and "no usable images" in s.reason for s in index.skipped)
    assert "Only one class ('only')" in summarize(index).warnings[0]
    config = TrainConfig(data=str(root), backbone=TINY, epochs=1)
    with pytest.raises(WarmstartError, match="at least two classes, but only 'only' has images"):
        Trainer(config, tmp_path / "run").fit()


def test_csv_with_missing_files_and_unknown_columns(tmp_path):
    root = write_dataset(tmp_path / "imgs", per_class=2)
    rows = ["path,label,photographer,notes"]
    rows += [f"{p.relative_to(tmp_path).as_posix()},{p.parent.name},ann,x" for p in sorted(root.rglob("*.png"))]
    rows += ["imgs/red/gone.png,red,bob,", ",red,,", "imgs/blue/blue_0.png,,,"]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    index = load_dataset(manifest)
    assert index.counts() == {"blue": 2, "green": 2, "red": 2}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "does not exist" in reasons["imgs/red/gone.png"]
    assert "empty path or label" in reasons["labels.csv:9"] and "empty path or label" in reasons["labels.csv:10"]
    warnings = summarize(index).warnings
    assert "columns Warmstart does not use (ignored): photographer, notes" in warnings[0]


def test_uploads_above_the_limit_are_refused_by_name_and_the_rest_kept(tmp_path, monkeypatch):
    from ui.uploads import save_files, save_zip

    monkeypatch.setenv("WARMSTART_MAX_UPLOAD_MB", "0.01")  # 10 KB
    small, big = _png(), b"\xff\xd8" + b"\x00" * 20_000
    saved, refused = save_files(tmp_path / "cls", [("ok.png", small), ("huge.jpg", big), ("notes.txt", b"hi")])
    assert saved == 1 and (tmp_path / "cls" / "ok.png").exists()
    assert refused[0].startswith("'huge.jpg' is 0.0 MB, above the upload limit")
    assert refused[1] == "'notes.txt' is not an image type (.txt)."
    with pytest.raises(WarmstartError, match=r"'big.zip' is .* above the upload limit .*WARMSTART_MAX_UPLOAD_MB"):
        save_zip(tmp_path, "big.zip", big)
    assert not list((tmp_path / "uploads").glob("*big.zip")) if (tmp_path / "uploads").exists() else True


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda info: info.update(classes=info["classes"] + ["extra"]), r"3 outputs but the metadata lists 4 classes"),
        (lambda info: info.update(classes=["red", "red", "blue"]), r"'classes' has duplicate names"),
        (lambda info: info.pop("preprocessing"), r"'preprocessing' needs input_size, mean and std"),
        (lambda info: info["preprocessing"].update(std=[0, 1, 1]), r"impossible input size, mean or std"),
        (lambda info: info.update(backbone="efficientnet_lite0"), r"do not fit the backbone named in the metadata"),
    ],
    ids=["classes", "duplicates", "no-preprocessing", "bad-std", "other-backbone"],
)
def test_reloading_checks_metadata_against_the_weights(tiny_config, tmp_path, tamper, message):
    import json

    from transfer_core.deploy.predict import load_trained_model

    run = Trainer(tiny_config.replace(epochs=1), tmp_path / "run").fit().run
    info = json.loads(run.model_file.read_text())
    tamper(info)
    run.model_file.write_text(json.dumps(info))
    with pytest.raises(WarmstartError, match=message):
        load_trained_model(run)


def test_a_damaged_checkpoint_is_refused_with_a_message(tiny_config, tmp_path):
    from transfer_core.deploy.predict import load_trained_model

    run = Trainer(tiny_config.replace(epochs=1), tmp_path / "run").fit().run
    run.checkpoint_file.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}")
    with pytest.raises(WarmstartError, match=r"Checkpoint of run 'run' is unreadable"):
        load_trained_model(run)
