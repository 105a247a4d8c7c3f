"""Bad input and interruptions as a user meets them in the app: named messages, queue, resume, unsaved results."""

from __future__ import annotations

import socket

from transfer_core import RunDir, Trainer
from ui import state

from ..bad_input import builders
from .test_pages import _goto, _no_exception


def test_data_page_names_every_bad_file_and_keeps_the_good_ones(app_with_data, color_dataset):
    builders.truncated_png(color_dataset / "red" / "cut off.png")
    (color_dataset / "green" / "shopping.jpg").write_text("eggs, milk")
    builders.png_with_header_only(color_dataset / "blue" / "bomb.png", 30_000, 30_000)
    (color_dataset / "blue" / "empty.png").write_bytes(b"")
    (color_dataset / "blue" / "copy.png").write_bytes((color_dataset / "red" / "red_0.png").read_bytes())
    (color_dataset / "no images").mkdir()
    at = _goto(app_with_data, "data")
    skipped = at.dataframe[0].value
    reasons = dict(zip(skipped["file"], skipped["reason"]))
    assert "not a readable image" in reasons["green/shopping.jpg"]
    assert "limit of 64,000,000 pixels" in reasons["blue/bomb.png"]
    assert reasons["blue/empty.png"] == "empty file"
    assert "no usable images" in reasons["no images/"]
    assert any("identical files in more than one class" in w.value and "copy.png" in w.value for w in at.warning)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Training images"]) + int(metrics["Validation images"]) == 30 + 2  # cut off.png + copy.png


def test_a_zip_above_the_upload_limit_is_refused_with_its_name(app, monkeypatch):
    from ui.uploads import save_zip
    import pytest
    from transfer_core import WarmstartError

    monkeypatch.setenv("WARMSTART_MAX_UPLOAD_MB", "1")
    with pytest.raises(WarmstartError, match=r"'holiday photos.zip' is 2.0 MB, above the upload limit of 1 MB"):
        save_zip(state.workspace(), "holiday photos.zip", b"\0" * (2 * 1024**2))


def test_second_run_waits_in_the_queue_and_says_so(app_with_data, tiny_config, colour_project):
    manager = state.job_manager()
    blocker = manager.start(tiny_config.replace(epochs=500, strategy="full"), store=colour_project.run_store())
    at = _goto(app_with_data, "train")
    # Someone else's run ("Queue training"), or, where a session follows the server's latest run, "Queue another run".
    queue = next(b for b in at.button if b.label in ("Queue training", "Queue another run"))
    queue.click().run()
    _no_exception(at)
    mine = manager.get(at.session_state["own_job"])
    assert mine is not blocker and mine.status == "queued"
    assert any("Waiting: 1 run ahead" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert mine.status == "cancelled"
    manager.cancel(blocker)
    blocker.wait(60)


def test_interrupted_run_can_be_resumed_from_the_train_page(app_with_data, tiny_config, colour_project):
    run = colour_project.run_store().new_run(tiny_config.replace(epochs=4))
    trainer = Trainer(tiny_config.replace(epochs=4), run, [lambda e: trainer.request_stop() if e.kind == "epoch" and e.epoch == 2 else None])
    trainer.fit()
    # As if the server had been killed during epoch 3: no closing event, and its process is gone.
    lines = run.metrics_file.read_text(encoding="utf-8").splitlines()
    run.metrics_file.write_text("\n".join(line for line in lines if '"event": "stopped"' not in line) + "\n", encoding="utf-8")
    (run.path / "owner.json").write_text('{"pid": 999999999, "host": "%s"}' % socket.gethostname())
    assert run.status() == "interrupted"
    at = _goto(app_with_data, "train")
    assert any(" · interrupted" in o for o in at.selectbox(key="train_past_run").options)
    at.button(key="resume_run").click().run()
    _no_exception(at)
    job = state.job_manager().get(run.path)
    job.wait(120)
    assert job.status == "finished" and RunDir(run.path).status() == "finished"


def test_full_disk_during_training_offers_retry_and_download(app_with_data, full_disk):
    at = _goto(app_with_data, "train")
    full_disk["on"] = False
    next(b for b in at.button if b.label == "Start training").click().run()
    job = state.job_manager().get(at.session_state["own_job"])
    full_disk["on"] = True  # the disk fills while it trains
    job.wait(120)
    assert job.status == "finished" and job.unsaved
    at.run()
    _no_exception(at)
    assert any("could not be written (No space left on device)" in e.value for e in at.error)
    assert at.get("download_button")
    full_disk["on"] = False
    at.button(key="retry_save").click().run()
    _no_exception(at)
    assert not job.unsaved and RunDir(job.run.path).read_report() is not None
    assert not any("could not be written" in e.value for e in at.error)
