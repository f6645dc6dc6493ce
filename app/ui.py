"""The Gradio Blocks app: one builder, thin wrappers that turn handler results into component values."""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import gradio as gr  # noqa: E402

from app import handlers  # noqa: E402
from app.bundle import RATE_CHOICES, LoadedModel, parse_rate  # noqa: E402
from app.handlers import Classification  # noqa: E402
from app.streaming import ENGINES, live_finish, live_step  # noqa: E402
from training.serving import dt_scale_used  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).parent / "examples"
STREAM_EVERY = 0.5  # seconds of microphone audio per live call
LIVE_TIME_LIMIT = 30  # seconds a live session may stream
INTRO = """# S4 speech commands
Say one of **yes no up down left right on off stop go**. The model reads the raw waveform with an S4
state-space model, and classifies audio at another sampling rate without retraining by scaling its step size
Δ (dt_scale = training rate / input rate)."""
REJECTS = "Anything else is answered with **not a command**, and quiet or noise with **silence**."
HEARD_HEADERS = ["time (s)", "command", "confidence"]


def _warn(result: Classification) -> None:
    for notice in result.notices:
        gr.Warning(notice)


def _callbacks(bundle: LoadedModel | None) -> tuple:
    """The event handlers for `bundle`: (classify, kernels, live). Their parameter names are the API's."""

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
        if bundle is None or not bundle.rescaled_ssms:
            return None
        try:
            model_rate = parse_rate(rate, bundle.train_rate)
            return handlers.kernel_figure(bundle, model_rate, dt_scale_used(bundle.meta, model_rate, rescale=True))
        except ValueError as error:
            gr.Warning(str(error))
            return None

    def live(chunk, session, rate: str, engine: str):
        """One streamed microphone chunk → live label, status, commands heard."""
        return live_step(bundle, chunk, session, rate, engine)

    return classify, kernels, live


def build_demo(bundle: LoadedModel | None, load_error: str | None = None) -> gr.Blocks:
    """The whole app for `bundle` (None: the app still starts and says why nothing can be classified)."""
    classify, kernels, live = _callbacks(bundle)
    with gr.Blocks(title="S4 speech commands", analytics_enabled=False) as demo:
        gr.Markdown(INTRO + (" " + REJECTS if bundle is not None and bundle.rejects else ""))
        if bundle is not None:
            _model_card(bundle)
        else:
            gr.Markdown(f"⚠️ **No model loaded.** {load_error or ''}", elem_id="model_info")
        audio_in, rate, compare, button, label, label_raw, status, timeline = _file_panel()
        with gr.Row():
            waveform = gr.Plot(label="Waveform", elem_id="waveform")
            spectrogram = gr.Plot(label="Spectrogram", elem_id="spectrogram")
        kernel_plot = gr.Plot(label="Learned SSM kernels at the chosen rate", elem_id="kernels")
        live_label, live_status, live_heard, mic, engine = _live_panel(bundle)
        session = gr.State(None)

        outputs = [label, label_raw, status, timeline, waveform, spectrogram, kernel_plot]
        button.click(classify, [audio_in, rate, compare], outputs, api_name="classify")
        compare.change(lambda show: gr.update(visible=show), [compare], [label_raw], api_name=False)
        rate.change(kernels, [rate], [kernel_plot], api_name=False)
        demo.load(kernels, [rate], [kernel_plot], api_name=False)
        live_outputs = [live_label, live_status, live_heard, session]
        mic.start_recording(lambda: (None, "", [], None), None, live_outputs, api_name=False)
        mic.stream(
            live, [mic, session, rate, engine], live_outputs,
            stream_every=STREAM_EVERY, time_limit=LIVE_TIME_LIMIT, api_name=False,
        )  # fmt: skip
        mic.stop_recording(live_finish, [session], live_outputs, api_name=False)
    return demo


def _model_card(bundle: LoadedModel) -> None:
    """The model card table, with the model's accuracy-vs-sampling-rate figure beside it when one sits next to
    the model file (`LoadedModel.rate_sweep_png`)."""
    sweep = bundle.rate_sweep_png
    if sweep is None:
        gr.Markdown(bundle.describe(), elem_id="model_info")
        return
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gr.Markdown(bundle.describe(), elem_id="model_info")
        with gr.Column(scale=2):
            gr.Image(
                str(sweep), label="Accuracy vs input sampling rate", interactive=False,
                elem_id="rate_sweep",
            )  # fmt: skip


def _file_panel() -> tuple:
    """Upload / record a clip and its results: (audio, rate, compare, button, label, label_raw, status, timeline)."""
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
                headers=["start (s)", "end (s)", "command", "probability"], label="Commands heard (long clips)",
                interactive=False, elem_id="timeline",
            )  # fmt: skip
    return audio_in, rate, compare, button, label, label_raw, status, timeline


def _live_panel(bundle: LoadedModel | None) -> tuple:
    """The live-mode components: (label, status, commands heard, microphone, engine choice)."""
    with gr.Group():
        if bundle is None:
            note = "⚠️ No model is loaded."
        elif bundle.causal:
            note = "Record and speak: the causal model listens sample by sample (or by windows: pick the engine)."
        else:
            note = f"Record and speak: {bundle.step_view_missing}, so the last second is classified as a whole."
        gr.Markdown(
            f"## Live mode\n{note} Each word you say is classified once, centred in a one-second window; "
            "the commands heard are listed, newest first."
        )
        with gr.Row():
            mic = gr.Audio(
                sources=["microphone"], streaming=True, label="Microphone (live)", elem_id="live_in",
                interactive=bundle is not None,
            )  # fmt: skip
            engine = gr.Radio(list(ENGINES), value="auto", label="Live engine", elem_id="live_engine")
        with gr.Row():
            live_label = gr.Label(num_top_classes=3, label="Live prediction", elem_id="live_label")
            live_heard = gr.Dataframe(
                headers=HEARD_HEADERS, value=[], label="Commands heard (newest first)", interactive=False,
                elem_id="live_heard",
            )  # fmt: skip
        live_status = gr.Markdown(elem_id="live_status")
    return live_label, live_status, live_heard, mic, engine
