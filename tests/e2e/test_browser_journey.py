"""The whole journey in a real browser: Debian's Chromium drives `streamlit run app.py`.

Saves a screenshot of every page under ``test-artifacts/``. Outside CI the test is skipped
when Chromium or Playwright is missing; in CI (CI=true) that is a failure, since `.ci/run`
installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.worker_hooks import PAUSE_SWITCH

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


def _require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian's chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"browser test needs {' and '.join(missing)}")
    assert not missing, f"CI must install {' and '.join(missing)} (see .ci/run)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run app.py`` on a free port with its own workspace; stop() fails the test on a traceback."""

    def __init__(self, home: Path, log: Path, **env: str) -> None:
        port = _free_port()
        self.log_path = log
        self._log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env={**os.environ, "WARMSTART_HOME": str(home), **env}, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.5)
        self.process.kill()
        pytest.fail("streamlit did not start: " + log.read_text()[-2000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
        assert "Traceback" not in self.log_path.read_text()


@pytest.fixture
def start_server(tmp_path):
    """Starts servers for a test and stops every one of them afterwards, also when the test fails."""
    _require_browser()
    started: list[Server] = []

    def start(home: Path, **env: str) -> Server:
        started.append(Server(home, tmp_path / "streamlit.log", **env))
        return started[-1]

    yield start
    for running in started:
        if not running._log.closed:
            running.stop()


@pytest.fixture
def feature_pause(tmp_path):
    """While this file exists, the server's workers wait after reporting feature progress (tests/worker_hooks.py);
    removed after the test also when it fails, since the workers outlive the server."""
    path = tmp_path / "pause-at-features"
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def server(tmp_path, feature_pause):
    _require_browser()
    running = Server(tmp_path / "home", tmp_path / "streamlit.log", WARMSTART_STANDBY_WORKER="1",  # as users get it
                     **{PAUSE_SWITCH: str(feature_pause)})
    yield running.url
    running.stop()


def _settle(page) -> None:
    """Wait until Streamlit has finished the current script run and images have loaded.

    The app root's script state says so at once; the status widget appears only after a delay."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning' && "
        "!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "!document.querySelector('[data-testid=\"stSkeleton\"]') && "
        "Array.from(document.images).every(img => img.complete)",
        timeout=60_000,
    )


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    _settle(page)
    time.sleep(1.5)  # let charts finish drawing
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def main(page):
    """The main column (the sidebar repeats some of the same words)."""
    return page.get_by_test_id("stMainBlockContainer")


def _open(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)


def test_sample_quick_train_evaluate(server, feature_pause):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server)
        page.get_by_role("button", name="Try a sample dataset").wait_for(timeout=60_000)
        _shot(page, "1-home")
        page.get_by_role("button", name="Try a sample dataset").click()
        page.wait_for_selector("h1:has-text('Train')", timeout=60_000)

        _open(page, "Data")
        main(page).get_by_text("Dataset: Handwritten digits").wait_for(timeout=60_000)
        main(page).locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        main(page).locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)
        _shot(page, "2-data")
        _open(page, "Backbone")
        main(page).get_by_text("Trainable parameters").wait_for(timeout=60_000)
        _shot(page, "3-backbone")
        _open(page, "Settings")
        main(page).get_by_text("Preview: what the model sees").wait_for(timeout=60_000)
        main(page).locator("[data-testid='stImage'] img").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Quick").click()
        expect(main(page).get_by_text("Current recipe: Quick")).to_be_visible(timeout=30_000)
        _shot(page, "4-settings")

        _open(page, "Train")
        # Features of 300 digits can take less than the page's one-second poll: the worker waits
        # after its first feature progress until the page has shown it.
        feature_pause.touch()
        page.get_by_role("button", name="Start training").click()
        main(page).get_by_text("Event log").wait_for(timeout=60_000)
        live = main(page).get_by_text("Computing features once")
        live.wait_for(timeout=60_000)
        first = live.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "5-train-live.png"), full_page=True)
        feature_pause.unlink()
        # The progress text moves while the worker runs (the page polls it every second).
        page.wait_for_function(
            "(first) => !document.body.innerText.includes(first)", arg=first, timeout=120_000
        )
        main(page).get_by_text("Training finished").wait_for(timeout=180_000)
        _shot(page, "6-train-finished")
        page.get_by_role("button", name="Evaluate this run").click()
        page.wait_for_selector("h1:has-text('Evaluate')", timeout=60_000)
        main(page).get_by_text("Confusion matrix (image counts)").wait_for(timeout=60_000)
        expect(main(page).get_by_text("Validation accuracy", exact=True)).to_be_visible()
        _shot(page, "7-evaluate")
        # Calibrated confidence: ECE before -> after and the reliability diagram.
        expect(main(page).get_by_text("Calibration error (ECE)")).to_be_visible(timeout=30_000)
        expect(main(page).locator(".js-plotly-plot .gtitle", has_text="Reliability")).to_have_count(1, timeout=30_000)
        # Clicking a confusion-matrix cell filters the gallery: the first cell is true 0, predicted 0.
        cell = main(page).locator(".js-plotly-plot .scatterlayer .point").first.bounding_box()
        page.mouse.click(cell["x"] + cell["width"] / 2, cell["y"] + cell["height"] / 2)
        expect(main(page).get_by_role("combobox", name="Show")).to_have_value("Correct: 0", timeout=30_000)
        _shot(page, "8-evaluate-cell-selected")
        main(page).get_by_text("Grad-CAM: show where the model looked").click()
        time.sleep(2)  # the rerun starts, then the overlays are computed
        _settle(page)
        _shot(page, "9-evaluate-grad-cam")

        # Predict: two new images, each with its top-k chart and Grad-CAM.
        _open(page, "Predict")
        files = _digit_images(server_home(page))
        main(page).locator("input[type=file]").first.set_input_files([str(f) for f in files])
        main(page).get_by_text("Grad-CAM for '").nth(1).wait_for(timeout=60_000)
        expect(main(page).locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)
        _shot(page, "10-predict")

        # Export: every format, checked against the app, downloaded as one zip.
        _open(page, "Export")
        page.get_by_role("button", name="Export and check").click()
        # .first: the model card's deployment section (in its expander) repeats each check.
        expect(main(page).get_by_text("onnx: agrees with the app").first).to_be_visible(timeout=180_000)
        expect(main(page).get_by_text("torchscript: agrees with the app").first).to_be_visible()
        expect(main(page).get_by_text("onnx-int8: the same class as the float model").first).to_be_visible()
        expect(main(page).get_by_text("What each file costs on this machine")).to_be_visible(timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="Download the export (zip)").click()
        with zipfile.ZipFile(download.value.path()) as zf:
            names = {Path(n).name for n in zf.namelist()}
        assert {"model.onnx", "model.int8.onnx", "model.torchscript.pt", "model.safetensors", "model.json", "MODEL_CARD.md"} <= names
        _shot(page, "11-export")
        _open(page, "Compare")
        main(page).get_by_text("Transfer learning vs training from scratch").wait_for(timeout=60_000)
        _shot(page, "12-compare")
        # The shoot-out (after training: it caches features a run would reuse) scores each bundled
        # backbone (probe accuracy, LogME, speed) and recommends one.
        _open(page, "Backbone")
        page.get_by_role("button", name="Run shoot-out").click()
        main(page).get_by_text("Recommended:").wait_for(timeout=240_000)
        expect(main(page).get_by_text("LogME (estimate)").first).to_be_attached()  # a column of the results grid
        _shot(page, "13-backbone-shootout")

        # Label less: add unlabelled scans to the pool, label the proposed ones by keyboard, retrain,
        # and see the learning curve on Compare.
        _open(page, "Data")
        pool_uploader = main(page).locator("[data-testid='stFileUploader']").filter(has_text="Images without classes")
        pool_uploader.locator("input[type=file]").set_input_files([str(f) for f in _pool_digits(server_home(page))])
        page.get_by_role("button", name="Add to the pool").click()
        expect(main(page).get_by_text("Added 8 image(s) to the pool.")).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="Suggest 20 images to label").click()
        main(page).get_by_text("Which class is this?").wait_for(timeout=120_000)
        expect(main(page).get_by_text("least sure of")).to_be_visible()  # a run exists: uncertainty + diversity
        for key, done in (("3", 1), ("7", 2), ("S", 3)):  # digit classes: the digit's own key; S skips
            _settle(page)
            page.keyboard.press(key)
            expect(main(page).get_by_text(f"{done} of 8 images of this batch labelled")).to_be_visible(timeout=30_000)
        _settle(page)
        page.keyboard.press("U")  # undo the skip
        expect(main(page).get_by_text("2 of 8 images of this batch labelled")).to_be_visible(timeout=30_000)
        _shot(page, "16-data-labelling")
        page.get_by_role("button", name="Retrain with the new labels").click()
        page.wait_for_selector("h1:has-text('Train')", timeout=60_000)
        main(page).get_by_text("Training finished").wait_for(timeout=180_000)
        _open(page, "Compare")
        expect(main(page).locator(".js-plotly-plot .gtitle", has_text="Accuracy against labelled images")).to_have_count(1, timeout=60_000)
        _shot(page, "17-compare-learning-curve")

        # Distil the latest run into another backbone, then see teacher and student side by side.
        page.get_by_role("button", name="Distil ").click()
        page.wait_for_selector("h1:has-text('Train')", timeout=60_000)
        main(page).get_by_text("Training finished").wait_for(timeout=240_000)
        _open(page, "Compare")
        # The side-by-side table is a canvas grid; its caption names the student to train alone for comparison.
        expect(main(page).get_by_text("without a teacher on this data")).to_be_visible(timeout=60_000)
        _shot(page, "18-compare-distilled")
        browser.close()


def _pool_digits(folder: Path) -> list[Path]:
    """Eight scans of scikit-learn's digits that the sample leaves out (it takes the first 30 per class), drawn as the sample draws them."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for i in range(1, 9):
        pixels = (255 - digits.images[-i] / 16.0 * 255).clip(0, 255).astype(np.uint8)
        path = folder / f"unlabelled-{i}.png"
        Image.fromarray(pixels, "L").resize((64, 64), Image.Resampling.BICUBIC).convert("RGB").save(path)
        paths.append(path)
    return paths


def server_home(page) -> Path:
    """A folder for files the test uploads (outside the repository)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"warmstart-e2e-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


def _digit_images(folder: Path) -> list[Path]:
    """Two handwritten-looking digits drawn with Pillow, to upload as new images."""
    from PIL import Image, ImageDraw

    paths = []
    for digit in ("3", "7"):
        image = Image.new("RGB", (64, 64), "black")
        ImageDraw.Draw(image).text((22, 14), digit, fill="white", font_size=36)
        path = folder / f"new-{digit}.png"
        image.save(path)
        paths.append(path)
    return paths


def test_projects_keep_the_recipe_across_a_refresh_and_a_server_restart(tmp_path, start_server):
    from playwright.sync_api import expect, sync_playwright

    home = tmp_path / "home"
    first = start_server(home)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(first.url)
        page.get_by_role("button", name="Try a sample dataset").click()
        page.wait_for_selector("h1:has-text('Train')", timeout=60_000)
        _open(page, "Settings")
        page.get_by_role("button", name="Balanced").click()
        expect(main(page).get_by_text("Current recipe: Balanced")).to_be_visible(timeout=30_000)
        page.reload()  # a refresh: a new session at the same URL
        page.wait_for_selector("h1:has-text('Settings')", timeout=60_000)
        expect(main(page).get_by_text("Current recipe: Balanced")).to_be_visible(timeout=30_000)
        first.stop()

        second = start_server(home)  # the server restarts: nothing in memory, everything on disk
        page.goto(second.url)
        page.get_by_role("button", name="Open").first.wait_for(timeout=60_000)
        expect(main(page).get_by_text("Handwritten digits (sample)")).to_be_visible()
        expect(main(page).get_by_text("300 images · 10 classes")).to_be_visible()
        _shot(page, "13-home-projects")
        page.get_by_role("button", name="Open").first.click()
        _open(page, "Settings")
        expect(main(page).get_by_text("Current recipe: Balanced")).to_be_visible(timeout=30_000)
        browser.close()


def _sign_in(context, url: str, name: str, password: str):
    page = context.new_page()
    page.goto(url)
    page.get_by_label("Your name").wait_for(timeout=60_000)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Class password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_classroom_students_in_two_browsers_never_see_each_other(tmp_path, start_server):
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path / "home", WARMSTART_CLASSROOM_PASSWORD="owls-2026", WARMSTART_TEACHER_PASSWORD="staffroom")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        anna_browser, ben_browser, teacher_browser = (browser.new_context(viewport={"width": 1400, "height": 1200})
                                                      for _ in range(3))
        wrong = _sign_in(ben_browser, server.url, "Ben", "owls")
        expect(wrong.get_by_text("not this class's password")).to_be_visible(timeout=30_000)
        _shot(wrong, "14-classroom-wrong-password")
        wrong.close()

        anna = _sign_in(anna_browser, server.url, "Anna", "owls-2026")
        anna.get_by_role("button", name="Try a sample dataset").click()
        anna.wait_for_selector("h1:has-text('Train')", timeout=60_000)
        anna_project = anna.url

        ben = _sign_in(ben_browser, server.url, "Ben", "owls-2026")
        expect(main(ben).get_by_text("Your projects")).to_be_visible(timeout=30_000)
        expect(main(ben).get_by_text("Handwritten digits (sample)")).to_have_count(0)
        # Ben opens the address of Anna's project: a sign-in form, and after signing in nothing of hers.
        ben.goto(anna_project)
        ben.get_by_label("Your name").fill("Ben")
        ben.get_by_label("Class password").fill("owls-2026")
        ben.get_by_role("button", name="Sign in").click()
        expect(main(ben).get_by_text("Your projects")).to_be_visible(timeout=30_000)
        expect(ben.get_by_text("Handwritten digits (sample)")).to_have_count(0)

        teacher = _sign_in(teacher_browser, server.url, "Mrs Kay", "staffroom")
        expect(main(teacher).get_by_text("Your class")).to_be_visible(timeout=30_000)
        expect(main(teacher).get_by_text("Anna", exact=True)).to_be_visible()
        expect(main(teacher).get_by_text("Ben", exact=True)).to_be_visible()
        _shot(teacher, "15-classroom-teacher")
        browser.close()
