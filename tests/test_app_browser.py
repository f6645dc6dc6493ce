"""The app in a real browser: Playwright for Python driving Debian's Chromium with a fake microphone.

One app server serves the module; each test gets a fresh Chromium whose fake microphone plays a generated
"yes" clip (in a loop). The tests check that a word from the class list appears (the tiny test model is
random); when the bundled model is present it serves instead, and the upload test refreshes docs/app.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from test_app_server import serve  # noqa: E402

from app.bundle import DEFAULT_MODEL, load_bundle  # noqa: E402
from app.ui import EXAMPLES  # noqa: E402
from training.common.audio import load_audio  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MIC_CLIP = EXAMPLES / "yes.wav"
LABEL = "[data-testid='label-output-value']"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "app.png"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={MIC_CLIP}",
]  # fmt: skip


@pytest.fixture(scope="module")
def app_url(tiny_s4_export: Path) -> Iterator[tuple[str, bool]]:
    """(URL, whether the bundled model serves) for an app on a free port of 127.0.0.1."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bundled = DEFAULT_MODEL.is_file()
    demo, url = serve(load_bundle(DEFAULT_MODEL if bundled else tiny_s4_export))
    try:
        yield url, bundled
    finally:
        demo.close()


@pytest.fixture
def browser() -> Iterator[object]:
    """A fresh Chromium per test: its fake microphone can go silent for later pages once one recording has
    stopped (seen here: one browser for all tests left the live test with a flat microphone signal).
    """
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, app_url) -> Iterator[object]:
    context = browser.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(app_url[0])
    page.wait_for_selector("#audio_in")
    yield page
    context.close()


def read_label(page, component: str, timeout_ms: int = 60_000) -> str:
    """Wait until the gr.Label `component` shows a class name (a command, or a 12-class model's "silence" or
    "not a command"), and return it."""
    selector = f"{component} {LABEL}"
    page.wait_for_function(
        "([selector, words]) => { const e = document.querySelector(selector);"
        " return e !== null && words.includes(e.textContent.trim()); }",
        arg=[selector, [*WORDS, "silence", "not a command"]],
        timeout=timeout_ms,
    )
    return page.inner_text(selector).strip()


def test_upload_and_classify(page, app_url, tmp_path: Path) -> None:
    """Upload the 8 kHz example, let the model see 8 kHz, ask for the dt_scale = 1 comparison too, classify."""
    page.set_input_files("#audio_in input[type=file]", str(EXAMPLES / "go_8k.wav"))
    page.wait_for_selector("#audio_in audio, #audio_in [data-testid='waveform-controls']", state="attached")
    page.click("#rate input")
    page.click("[role=listbox] [role=option]:has-text('8 kHz (0.5x)')")
    page.check("#compare input[type=checkbox]")
    page.click("#classify_btn")
    read_label(page, "#label")
    read_label(page, "#label_raw")
    page.wait_for_selector("#waveform img, #waveform canvas, #waveform svg", state="attached")
    assert "dt_scale = 16000/8000 = 2" in page.inner_text("#status")
    page.screenshot(path=tmp_path / "upload.png", full_page=True)
    if app_url[1]:  # the README shows the bundled model at work; 256 colours keep the PNG ~200 KB, not 500
        from PIL import Image

        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        screenshot = Image.open(tmp_path / "upload.png").convert("RGB").quantize(256)
        screenshot.save(DOCS_SCREENSHOT, optimize=True)


def test_record_with_microphone(page, tmp_path: Path) -> None:
    page.click("#audio_in button[aria-label='Record audio']")
    page.click("#audio_in button.record-button")
    page.wait_for_timeout(1500)
    page.click("#audio_in button:has-text('Stop')")
    page.wait_for_selector("#audio_in audio, #audio_in [data-testid='waveform-controls']", state="attached")
    page.click("#classify_btn")
    read_label(page, "#label")
    page.screenshot(path=tmp_path / "record.png", full_page=True)


def test_live_mode_shows_a_word(page, tmp_path: Path) -> None:
    page.click("#live_in button.record-button")
    read_label(page, "#live_label")
    assert "Live:" in page.inner_text("#live_status")
    # The list of commands heard sits beside the label (which words enter it depends on the model).
    assert "command" in page.inner_text("#live_heard") and "confidence" in page.inner_text("#live_heard")
    page.screenshot(path=tmp_path / "live.png", full_page=True)
    page.click("#live_in button:has-text('Stop')")


STREAM_WORDS = ("up", "no", "left")  # three different words, each with a pause after it
# gr.Dataframe draws its body as a virtual list of role=row divs (newest entry first), one gridcell per column.
HEARD_ROWS = "#live_heard .virtual-row"
CELL_TEXTS = "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]'), c => c.innerText.trim()))"


def test_live_mode_lists_a_stream_of_words_in_order(app_url, tmp_path: Path) -> None:
    """The fake microphone plays "up … no … left …" (generated voices, in a loop): the list of commands heard
    shows them in the order they were said. Needs a model that recognises words: the bundled one."""
    if not app_url[1]:
        pytest.skip("a randomly initialised test model does not recognise words")
    stream = tmp_path / "stream.wav"
    parts = [np.zeros(8000, np.float32)]
    for word in STREAM_WORDS:
        parts += [load_audio(EXAMPLES / f"{word}.wav").numpy(), np.zeros(12000, np.float32)]
    sf.write(stream, np.concatenate(parts), 16000, subtype="PCM_16")
    args = [a for a in ARGS if not a.startswith("--use-file-for-fake-audio-capture")]
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*args, f"--use-file-for-fake-audio-capture={stream}"]
        )
        try:
            context = chromium.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(app_url[0])
            page.wait_for_selector("#live_in")
            page.click("#live_in button.record-button")
            # Rows are newest first; the file loops: wait until it has been said twice.
            rows: list[list[str]] = []
            for _ in range(90):
                page.wait_for_timeout(1000)
                rows = page.eval_on_selector_all(HEARD_ROWS, CELL_TEXTS)
                if len(rows) >= 2 * len(STREAM_WORDS):  # the loop said twice
                    break
            page.screenshot(path=tmp_path / "live-stream.png", full_page=True)
            status = page.inner_text("#live_status")
            page.click("#live_in button:has-text('Stop')")
        finally:
            chromium.close()
    heard = [row[1] for row in reversed(rows)]  # oldest first; columns: time (s), command, confidence
    assert set(STREAM_WORDS) <= set(heard), f"listed {heard}; status: {status}"
    # In the order said: three consecutive entries are the loop's words in order (from wherever the list caught
    # it; the browser's audio path, resampled and chunked, is not the file bit for bit, so one word may be missed
    # elsewhere in the list).
    rotations = [list(STREAM_WORDS[i:] + STREAM_WORDS[:i]) for i in range(len(STREAM_WORDS))]
    assert any(heard[i : i + 3] in rotations for i in range(len(heard) - 2)), heard
