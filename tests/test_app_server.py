"""End to end over HTTP: the app served in-process on 127.0.0.1, called with gradio_client."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio_client would otherwise look up the Hugging Face hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client, handle_file  # noqa: E402

from app.bundle import load_bundle  # noqa: E402
from app.ui import EXAMPLES, build_demo  # noqa: E402

WORDS = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(bundle, load_error: str | None = None) -> tuple[object, str]:
    """Launch the app without blocking → (demo, its URL). The caller closes it."""
    demo = build_demo(bundle, load_error)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def client(tiny_s4_export: Path) -> Iterator[Client]:
    demo, url = serve(load_bundle(tiny_s4_export))
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_classify_over_http(client: Client) -> None:
    label, label_raw, status, *_ = client.predict(
        handle_file(str(EXAMPLES / "go_8k.wav")), "8000", True, api_name="/classify"
    )
    assert label["label"] in WORDS
    assert {c["label"] for c in label["confidences"]} <= WORDS
    assert label_raw["label"] in WORDS  # the dt_scale = 1 comparison
    assert "dt_scale = 16000/8000 = 2" in status


def _cut_wav(path: Path) -> Path:
    sf.write(path, np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:16044])  # the header and half of the samples
    return path


BAD_INPUTS = {  # name: (make the file in a folder, rate, the start of the one message)
    "corrupt": (
        lambda d: _raw(d / "corrupt.wav", b"RIFF" + b"\x01" * 500),
        "16000",
        "⚠️ Cannot use corrupt.wav: unreadable or corrupt audio file",
    ),
    "text": (lambda d: _raw(d / "notes.wav", b"a text file, renamed\n" * 30), "16000", "⚠️ Cannot use notes.wav: "),
    "ten samples": (lambda d: _ten_samples(d / "ten.wav"), "16000", "⚠️ The clip lasts only 0.6 ms"),
    "rate abc": (lambda d: EXAMPLES / "yes.wav", "abc", "⚠️ The rate setting 'abc' is not a number of Hz"),
    "rate 8000.5": (lambda d: EXAMPLES / "yes.wav", "8000.5", "⚠️ The rate setting '8000.5' is not a whole"),
    "rate -8000": (lambda d: EXAMPLES / "yes.wav", "-8000", "⚠️ The rate setting -8000 Hz is outside"),
}


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ten_samples(path: Path) -> Path:
    sf.write(path, np.full(10, 0.1, np.float32), 16000)
    return path


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_over_http_gets_one_message_and_the_server_stays_up(client: Client, tmp_path: Path, name) -> None:
    make, rate, message = BAD_INPUTS[name]
    label, _, status, rows, *_ = client.predict(handle_file(str(make(tmp_path))), rate, False, api_name="/classify")
    assert not label and status.startswith(message) and status.count("⚠️") == 1, status  # no label: {}
    assert rows["data"] == [] and "librosa: )" not in status and str(tmp_path) not in status
    label, *_ = client.predict(
        audio=handle_file(str(EXAMPLES / "yes.wav")), rate="16000", compare=False, api_name="/classify"
    )
    assert label["label"] in WORDS


def test_truncated_wav_over_http_is_answered_and_flagged(client: Client, tmp_path: Path) -> None:
    label, _, status, *_ = client.predict(
        handle_file(str(_cut_wav(tmp_path / "cut.wav"))), "16000", False, api_name="/classify"
    )
    assert label["label"] in WORDS and "⚠️ cut.wav is cut short: its header promises 1.00 s" in status


def test_app_starts_without_a_model() -> None:
    demo, url = serve(None, "The bundled model is missing.")
    try:
        _, _, status, *_ = Client(url, verbose=False).predict(
            handle_file(str(EXAMPLES / "yes.wav")), "16000", False, api_name="/classify"
        )
        assert "No model is loaded" in status
    finally:
        demo.close()


def test_12_class_model_over_http(tiny_sc12_bidirectional_export: Path) -> None:
    demo, url = serve(load_bundle(tiny_sc12_bidirectional_export))
    try:
        label, *_ = Client(url, verbose=False).predict(
            handle_file(str(EXAMPLES / "no.wav")), "16000", False, api_name="/classify"
        )
        assert {c["label"] for c in label["confidences"]} <= WORDS | {"silence", "not a command"}
    finally:
        demo.close()
