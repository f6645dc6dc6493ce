"""The Gradio Blocks app: one builder, thin wrappers that turn handler results into component values."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import gradio as gr  # noqa: E402

from app import handlers  # noqa: E402
from app.handlers import RATE_CHOICES, Classification, LoadedModel  # noqa: E402
from app.streaming import ENGINES, live_step, live_unavailable  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).parent / "examples"
STREAM_EVERY = 0.5  # seconds of microphone audio per live call
LIVE_TIME_LIMIT = 30  # seconds a live session may stream
INTRO = """# S4 speech commands
Say one of **yes no up down left right on off stop go**. The model reads the raw waveform with an S4
state-space model, and classifies audio at another sampling rate without retraining by scaling its step size
Δ (dt_scale = training rate / input rate)."""


def _warn(result: Classification) -> None:
    for notice in result.notices:
        gr.Warning(notice)


def build_demo(bundle: LoadedModel | None, load_error: str | None = None) -> gr.Blocks:
    """The whole app for `bundle` (None: the app still starts and says why nothing can be classified)."""

    def classify(audio: str | None, rate: str, compare: bool):
        """Classify an uploaded or recorded clip at the chosen rate; also at dt_scale = 1 when `compare`."""
        result = handlers.classify(bundle, audio, rate, compare)
        _warn(result)
        return (
            result.label,
            result.label_raw,
            result.status,
            result.timeline(),
            result.waveform,
            result.spectrogram,
            result.kernels,
        )

    def kernels(rate: str):
        """Redraw the kernel panel for a new rate choice (before any clip is classified)."""
        if bundle is None or not bundle.s4_layers:
            return None
        try:
            return handlers.kernel_figure(bundle, handlers.parse_rate(rate, bundle.train_rate))
        except ValueError as error:
            gr.Warning(str(error))
            return None

    def live(chunk, session, rate: str, engine: str):
        """One streamed microphone chunk → live label and status."""
        return live_step(bundle, chunk, session, rate, engine)

    with gr.Blocks(title="S4 speech commands", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        if bundle is not None:
            gr.Markdown(bundle.describe(), elem_id="model_info")
        else:
            gr.Markdown(f"⚠️ **No model loaded.** {load_error or ''}", elem_id="model_info")
        with gr.Row():
            with gr.Column(scale=1):
                audio_in = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Audio (any rate, any length)",
                    elem_id="audio_in",
                )  # fmt: skip
                rate = gr.Dropdown(
                    RATE_CHOICES, value="16000", label="Rate the model sees", allow_custom_value=True,
                    info="The clip is resampled to this rate and dt_scale = training rate / rate.", elem_id="rate",
                )  # fmt: skip
                compare = gr.Checkbox(
                    label="Also run without re-discretising (dt_scale = 1)", value=False, elem_id="compare"
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify_btn")
                example_files = sorted(str(p) for p in EXAMPLES.glob("*.wav"))
                if example_files:
                    gr.Examples(
                        [[f, "8000" if "8k" in Path(f).stem else "16000"] for f in example_files],
                        [audio_in, rate], label="Generated example clips (SYNTHETIC speech)", examples_per_page=11,
                    )  # fmt: skip
            with gr.Column(scale=1):
                label = gr.Label(num_top_classes=5, label="Prediction (re-discretised)", elem_id="label")
                label_raw = gr.Label(
                    num_top_classes=3, label="Prediction with dt_scale = 1", visible=False, elem_id="label_raw"
                )
                status = gr.Markdown(elem_id="status")
                timeline = gr.Dataframe(
                    headers=["start (s)", "end (s)", "word", "probability"], label="Words heard (long clips)",
                    interactive=False, elem_id="timeline",
                )  # fmt: skip
        with gr.Row():
            waveform = gr.Plot(label="Waveform", elem_id="waveform")
            spectrogram = gr.Plot(label="Spectrogram", elem_id="spectrogram")
        kernel_plot = gr.Plot(label="Learned SSM kernels at the chosen rate", elem_id="kernels")
        with gr.Group():
            live_ok = bundle is not None and bundle.causal
            if live_ok:
                note = "Record and speak: the causal model listens sample by sample."
            else:
                note = "⚠️ " + (live_unavailable(bundle) if bundle is not None else "No model is loaded.")
            gr.Markdown(f"## Live mode\n{note}")
            with gr.Row():
                mic = gr.Audio(
                    sources=["microphone"], streaming=True, label="Microphone (live)", elem_id="live_in",
                    interactive=live_ok,
                )  # fmt: skip
                engine = gr.Radio(list(ENGINES), value="auto", label="Live engine", elem_id="live_engine")
            live_label = gr.Label(num_top_classes=3, label="Live prediction", elem_id="live_label")
            live_status = gr.Markdown(elem_id="live_status")
        session = gr.State(None)

        outputs = [label, label_raw, status, timeline, waveform, spectrogram, kernel_plot]
        button.click(classify, [audio_in, rate, compare], outputs, api_name="classify")
        compare.change(lambda show: gr.update(visible=show), [compare], [label_raw], api_name=False)
        rate.change(kernels, [rate], [kernel_plot], api_name=False)
        demo.load(kernels, [rate], [kernel_plot], api_name=False)
        mic.start_recording(lambda: (None, None, ""), None, [session, live_label, live_status], api_name=False)
        mic.stream(
            live, [mic, session, rate, engine], [live_label, live_status, session],
            stream_every=STREAM_EVERY, time_limit=LIVE_TIME_LIMIT, api_name=False,
        )  # fmt: skip
    return demo
