"""End to end over HTTP: the app served in-process on 127.0.0.1, called with gradio_client."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def test_bad_file_over_http_keeps_the_server_up(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF" + b"\x01" * 500)
    _, _, status, *_ = client.predict(handle_file(str(bad)), "16000", False, api_name="/classify")
    assert "unreadable or corrupt" in status
    label, *_ = client.predict(
        audio=handle_file(str(EXAMPLES / "yes.wav")), rate="16000", compare=False, api_name="/classify"
    )
    assert label["label"] in WORDS


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
