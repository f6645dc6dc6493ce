"""The app in a real browser: Playwright for Python driving Debian's Chromium with a fake microphone.

One app server serves the module (the bundled model when present, else the tiny random test model); each test
gets a fresh Chromium whose fake microphone plays a clip in a loop. The tests wait on what the page itself shows
(a label, a status line, rows of a table), never on fixed seconds, so a busy machine makes them slower, not red.
Nothing is written into the checkout: screenshots go to pytest's temporary folder. To refresh the README's
screenshot, run the upload test with APP_SCREENSHOT set (README, "The demo"):

    APP_SCREENSHOT=docs/app.png .venv/bin/python -m pytest tests/test_app_browser.py -k upload
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from test_app_server import serve  # noqa: E402
from word_stream import REAL_DATA, real_word_stream  # noqa: E402

from app import handlers  # noqa: E402
from app.bundle import DEFAULT_MODEL, load_bundle  # noqa: E402
from app.ui import EXAMPLES  # noqa: E402
from benchmarks.live_stream import in_order  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASS_NAMES = [*WORDS, "silence", "not a command"]
LABEL = "[data-testid='label-output-value']"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip
PAGE_MS = 180_000  # the longest wait for one thing to show on the page (a loaded 2-core machine is slow)
LIVE_WORDS = 6  # real commands in the fake microphone's loop


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


def open_page(playwright, url: str, microphone: Path):
    """A fresh Chromium whose fake microphone loops `microphone` (one browser per test: a fake microphone can go
    silent for later pages once a recording has stopped), on the app's page."""
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*ARGS, f"--use-file-for-fake-audio-capture={microphone}"]
    )
    context = chromium.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_MS)
    page.goto(url)
    page.wait_for_selector("#audio_in")
    # The page's load event has answered (it also opens live mode: app.ui.build_demo), so the page is ready.
    wait_for_text(page, "#rate_note", "The model hears")
    return chromium, page


@pytest.fixture
def page(app_url) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium, page = open_page(playwright, app_url[0], EXAMPLES / "yes.wav")
        try:
            yield page
        finally:
            chromium.close()


def read_label(page, component: str) -> str:
    """Wait until the gr.Label `component` shows a class name, and return it."""
    selector = f"{component} {LABEL}"
    page.wait_for_function(
        "([selector, names]) => { const e = document.querySelector(selector);"
        " return e !== null && names.includes(e.textContent.trim()); }",
        arg=[selector, CLASS_NAMES],
    )
    return page.inner_text(selector).strip()


def wait_for_text(page, selector: str, text: str) -> str:
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.innerText ?? '').includes(text)", arg=[selector, text]
    )
    return page.inner_text(selector)


def test_upload_change_the_rate_and_compare(page, tmp_path: Path) -> None:
    """Upload the 8 kHz example: the answer comes without a button. Let the model hear 8 kHz: the sentence under
    the control says Δ is stretched by 2, and the answer follows; ask for the Δ-unchanged answer beside it."""
    page.set_input_files("#audio_in input[type=file]", str(EXAMPLES / "go_8k.wav"))
    read_label(page, "#label")
    wait_for_text(page, "#status", "dt_scale = 16000/16000 = 1")
    page.click("#rate input")
    page.click("[role=listbox] [role=option]:has-text('8 kHz (0.5x)')")
    assert "stretches its time step Δ by 2" in wait_for_text(page, "#rate_note", "8 kHz")
    wait_for_text(page, "#status", "dt_scale = 16000/8000 = 2")
    page.check("#compare input[type=checkbox]")
    read_label(page, "#label_raw")
    page.wait_for_selector("#waveform img, #waveform canvas, #waveform svg", state="attached")
    page.screenshot(path=tmp_path / "upload.png", full_page=True)
    print(f"screenshot: {tmp_path / 'upload.png'}")
    if os.environ.get("APP_SCREENSHOT"):  # the README's picture; 256 colours keep the PNG ~200 KB, not 500
        from PIL import Image

        Image.open(tmp_path / "upload.png").convert("RGB").quantize(256).save(
            os.environ["APP_SCREENSHOT"], optimize=True
        )


def test_a_bad_file_and_a_bad_rate_are_named_at_once(page, tmp_path: Path) -> None:
    """A text file renamed .wav: the message comes on upload. A typed rate of "abc": one message, under the rate
    control, blaming the setting. Then a good rate and the page answers again."""
    notes = tmp_path / "notes.wav"
    notes.write_text("a shopping list, not a recording\n" * 20)
    page.set_input_files("#audio_in input[type=file]", str(notes))
    status = wait_for_text(page, "#status", "Cannot use notes.wav")
    assert "librosa: )" not in status and status.count("⚠️") == 1
    page.fill("#rate input", "abc")
    page.keyboard.press("Enter")
    wait_for_text(page, "#rate_note", "The rate setting 'abc' is not a number of Hz")
    assert "rate setting" not in page.inner_text("#status")  # one message, where the setting is
    page.fill("#rate input", "8000")
    page.keyboard.press("Enter")
    wait_for_text(page, "#rate_note", "stretches its time step Δ by 2")
    page.screenshot(path=tmp_path / "bad.png", full_page=True)


def test_record_with_the_microphone(page, tmp_path: Path) -> None:
    page.click("#audio_in button[aria-label='Record audio']")
    page.click("#audio_in button.record-button")
    page.wait_for_timeout(1500)  # the length of the recording, not a wait for the page
    page.click("#audio_in button:has-text('Stop')")
    read_label(page, "#label")  # answered on stopping, no button
    page.screenshot(path=tmp_path / "record.png", full_page=True)


# gr.Dataframe draws its body as a virtual list of role=row divs, one gridcell per column.
HEARD_ROWS = "#live_heard .virtual-row"
CELL_TEXTS = "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]'), c => c.innerText.trim()))"
LIVE_DONE = """([rows, n]) => document.querySelectorAll(rows).length >= n
    || (document.querySelector('#live_status')?.innerText ?? '').includes('Stopped listening')"""


def live_stream(app_url, tmp_path: Path) -> tuple[list[str], list[str], str]:
    """The fake microphone loops LIVE_WORDS real commands (test speakers, quiet and loud): → (the words the file
    word-finder lists for that recording, the words live mode listed (oldest first), live mode's status)."""
    if not app_url[1] or not (REAL_DATA / "testing_list.txt").is_file():
        pytest.skip("needs the bundled model and ../shared/data/speech_commands_real")
    wave, _ = real_word_stream(LIVE_WORDS, seed=2)
    stream = tmp_path / "stream.wav"
    sf.write(stream, wave.numpy(), 16000, subtype="PCM_16")
    expected = [h.word for h in handlers.classify(load_bundle(DEFAULT_MODEL), str(stream), "16000").heard]
    with sync_api.sync_playwright() as playwright:
        chromium, page = open_page(playwright, app_url[0], stream)
        try:
            page.click("#live_in button.record-button")
            wait_for_text(page, "#live_status", "Live:")  # the first chunk was heard
            # Until the list is as long as the file's, or the time limit (30 s of audio) is reached; a server too
            # slow for even that must have said why on the page (check_live).
            with contextlib.suppress(sync_api.TimeoutError):
                page.wait_for_function(LIVE_DONE, arg=[HEARD_ROWS, len(expected)])
            rows = page.eval_on_selector_all(HEARD_ROWS, CELL_TEXTS)
            status = page.inner_text("#live_status")
            page.screenshot(path=tmp_path / "live.png", full_page=True)
            page.click("#live_in button:has-text('Stop')")
        finally:
            chromium.close()
    return expected, [row[1] for row in reversed(rows)], status


def check_live(expected: list[str], listed: list[str], status: str) -> None:
    """The list is the file's, in order (one word may go: the browser's audio path is not the file bit for bit),
    or, when it is not, the page says that the server cannot keep up."""
    assert len(expected) >= 3, expected
    if in_order(expected, listed[: len(expected) + 1]) < len(expected) - 1:
        assert "server is busy" in status, f"listed {listed}, the file gives {expected}; status: {status}"


def test_live_mode_lists_a_stream_of_real_words(app_url, tmp_path: Path) -> None:
    check_live(*live_stream(app_url, tmp_path))


@pytest.mark.slow
def test_live_mode_with_both_cores_busy(app_url, tmp_path: Path) -> None:
    """The same with a busy loop on every core, as a developer's training run would: still the list, or the page
    says it is behind."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        check_live(*live_stream(app_url, tmp_path))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.slow
def test_the_readme_screenshot_command(tmp_path: Path) -> None:
    """README's command that refreshes docs/app.png, run with the picture sent to a temporary path instead."""
    from PIL import Image
    from test_readme import commands_matching

    (command,) = commands_matching(r"APP_SCREENSHOT=docs/app\.png ")
    setting, python, *args = command.split()
    assert python == ".venv/bin/python"
    picture = tmp_path / "app.png"
    env = {**os.environ, setting.split("=")[0]: str(picture)}
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, *args, "-p", "no:cacheprovider"], cwd=root, env=env, capture_output=True)
    assert result.returncode == 0 and b"1 passed" in result.stdout, result.stdout[-2000:]
    assert Image.open(picture).size[0] == 1280  # the page, at the test's viewport width
