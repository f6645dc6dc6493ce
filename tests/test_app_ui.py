"""The page as built: what a person meets first, what answers a clip the moment it is given, the rate sentence."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from app import ui
from app.bundle import LoadedModel, load_bundle
from app.streaming import TIME_LIMIT_SECONDS
from app.texts import rate_note
from app.ui import EXAMPLES, build_demo


@pytest.fixture(scope="module")
def bundle(tiny_s4_export: Path) -> LoadedModel:
    return load_bundle(tiny_s4_export)


def _by_id(demo: gr.Blocks) -> dict[str, object]:
    return {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}


def _handlers(demo: gr.Blocks, elem_id: str, event: str) -> list:
    return [f for f in demo.fns.values() if (_by_id(demo)[elem_id]._id, event) in f.targets]


def _handler(demo: gr.Blocks, elem_id: str, event: str):
    (fn,) = _handlers(demo, elem_id, event)
    return fn


def test_a_clip_is_answered_the_moment_it_is_given(bundle) -> None:
    """Uploading, recording or choosing an example changes the audio: that runs the classifier, no button needed."""
    demo = build_demo(bundle)
    ids = _by_id(demo)
    for control in ("audio_in", "rate", "compare"):  # and again when a setting changes
        (on_change,) = [f for f in _handlers(demo, control, "change") if f.fn.__name__ == "on_audio"]
        assert on_change.inputs[0] is ids["audio_in"]
        assert [o.elem_id for o in on_change.outputs[:4]] == ["label", "label_raw", "status", "timeline"]
    assert _handler(demo, "classify_btn", "click").api_name == "classify"


def test_a_bad_file_is_named_when_given_and_a_cleared_one_leaves_no_message(bundle, tmp_path: Path) -> None:
    _, on_audio, _, _ = ui._callbacks(bundle)
    text = tmp_path / "notes.wav"
    text.write_text("not a recording\n" * 20)
    label, _, status, rows, *_ = on_audio(str(text), "16000", False)
    assert (
        label is None and rows == [] and status.startswith("⚠️ Cannot use notes.wav: unreadable or corrupt audio file")
    )
    label, _, status, rows, *_ = on_audio(None, "16000", False)
    assert label is None and status == "" and rows == []
    label, _, status, *_ = on_audio(str(EXAMPLES / "yes.wav"), "16000", False)
    assert label is not None and status.startswith("Heard **")
    label, _, status, *_ = on_audio(str(EXAMPLES / "yes.wav"), "abc", False)  # the rate control says what is wrong
    assert label is None and status == ""


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("8000", "The model hears **8 kHz**: it stretches its time step Δ by **2** (16 kHz / 8 kHz) instead of"),
        ("16000", "The model hears **16 kHz**, the rate it learned at: its time step Δ is used as learned."),
        ("32000", "it shrinks its time step Δ to **0.5×**"),
        ("native", "The model hears each clip at its own rate, stretching its time step Δ by 16 kHz / that rate."),
        ("abc", "⚠️ The rate setting 'abc' is not a number of Hz"),
    ],
)
def test_the_rate_control_says_in_words_what_it_does(bundle, choice: str, expected: str) -> None:
    note = rate_note(bundle, choice)
    assert expected in note and note.count("⚠️") == choice.startswith("abc")
    if choice not in ("abc", "native"):
        assert note.endswith("Live mode hears at this rate too.")


def test_a_bad_rate_gets_one_message_under_the_control(bundle) -> None:
    _, _, on_rate, _ = ui._callbacks(bundle)
    note, kernels, delta = on_rate("8000.5")
    assert note.startswith("⚠️ The rate setting '8000.5' is not a whole number of Hz") and kernels is None
    note, kernels, delta = on_rate("8000")
    assert "Δ by **2**" in note and len(kernels.axes) == 4 and "| re-discretised | 8000 Hz | 2 |" in delta


def test_the_answer_comes_first_and_the_science_is_one_click_away(bundle) -> None:
    demo = build_demo(bundle)
    ids = _by_id(demo)
    order = list(demo.blocks)  # in the order the page lays them out
    assert order.index(ids["label"]._id) < order.index(ids["live_in"]._id) < order.index(ids["kernels"]._id)
    accordions = [b for b in demo.blocks.values() if isinstance(b, gr.Accordion)]
    assert len(accordions) == 2 and not any(a.open for a in accordions)
    inside = {c.elem_id for a in accordions for c in _descendants(a)}
    assert {"model_info", "kernels", "kernel_caption", "delta"} <= inside
    live_note = ids["live_note"].value
    assert f"up to {TIME_LIMIT_SECONDS:.0f} s" in live_note and "permission to use the microphone" in live_note
    assert "rate chosen above" in live_note


def _descendants(block) -> list:
    children = list(getattr(block, "children", []))
    return children + [d for c in children for d in _descendants(c)]


def test_the_page_shows_a_truncated_file_flagged(bundle, tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:20000])
    _, on_audio, _, _ = ui._callbacks(bundle)
    label, _, status, *_ = on_audio(str(path), "16000", False)
    assert label is not None and "⚠️ cut.wav is cut short" in status
