"""The Gradio Blocks app: one builder, thin wrappers that turn handler results into component values.

The page puts the answer first (a clip in, the word out, the rate the model hears), then live mode, and the
science one click away in collapsible parts, each figure with a caption that says what to look for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import gradio as gr  # noqa: E402

from app import handlers  # noqa: E402
from app.bundle import RATE_CHOICES, LoadedModel, RateError, parse_rate  # noqa: E402
from app.handlers import Classification  # noqa: E402
from app.streaming import TIME_LIMIT_SECONDS, available_engines, live_finish, live_step  # noqa: E402
from app.texts import DELTA_TEXT, KERNEL_CAPTION, SWEEP_CAPTION, intro, live_note, rate_note  # noqa: E402
from training.serving import dt_scale_used  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).parent / "examples"
STREAM_EVERY = 0.5  # seconds of microphone audio per live call
HEARD_HEADERS = ["time (s)", "command", "confidence"]  # one table format for files and live mode


def _warn(result: Classification) -> None:
    for notice in result.notices:
        gr.Warning(notice)


def _callbacks(bundle: LoadedModel | None) -> tuple:
    """The event handlers for `bundle`: (classify, on_audio, on_rate, live). Their parameter names are the API's."""

    def classify(audio: str | None, rate: str, compare: bool):
        """Classify an uploaded or recorded clip at the chosen rate; also at dt_scale = 1 when `compare`."""
        result = handlers.classify(bundle, audio, rate, compare)
        _warn(result)
        values = (result.label, result.label_raw, result.status, result.timeline(), result.waveform)
        return (*values, result.spectrogram, result.kernels, result.delta)

    def on_audio(audio: str | None, rate: str, compare: bool):
        """A clip given (uploaded, recorded, an example chosen) or a setting changed: the answer, or what is wrong
        with the clip, at once. No clip, or a rate setting the control already calls wrong: a blank answer."""
        if not audio or not _valid_rate(bundle, rate):
            return None, None, "", [], None, None, gr.update(), gr.update()
        return classify(audio, rate, compare)

    def on_rate(rate: str):
        """The rate setting changed: the sentence under it (or what is wrong with it), the kernels and Δ table."""
        if bundle is None:
            return rate_note(None, rate), None, ""
        try:
            model_rate = parse_rate(rate, bundle.train_rate)
        except RateError as error:
            return f"⚠️ {error}", None, ""
        scale = dt_scale_used(bundle.meta, model_rate, rescale=True)
        kernels = handlers.kernel_figure(bundle, model_rate, scale)
        return rate_note(bundle, rate), kernels, handlers.delta_table(bundle, model_rate, scale, compare=False)

    def live(chunk, session, rate: str, engine: str):
        """One streamed microphone chunk → live label, status, commands heard."""
        return live_step(bundle, chunk, session, rate, engine)

    return classify, on_audio, on_rate, live


def _valid_rate(bundle: LoadedModel | None, rate: str) -> bool:
    try:
        parse_rate(rate, bundle.train_rate if bundle is not None else 16000)
    except RateError:
        return False
    return True


def build_demo(bundle: LoadedModel | None, load_error: str | None = None) -> gr.Blocks:
    """The whole app for `bundle` (None: the app still starts and says why nothing can be classified)."""
    classify, on_audio, on_rate, live = _callbacks(bundle)
    with gr.Blocks(title="S4 speech commands", analytics_enabled=False) as demo:
        gr.Markdown(intro(bundle))
        if bundle is None:
            gr.Markdown(f"⚠️ **No model loaded.** {load_error or ''}", elem_id="model_info")
        file_panel = _file_panel()
        audio_in, rate, note, compare, button, label, label_raw, status, timeline, waveform, spectrogram = file_panel
        live_label, live_status, live_heard, mic, engine = _live_panel(bundle)
        kernel_plot, delta = _science(bundle)
        session = gr.State(None)

        outputs = [label, label_raw, status, timeline, waveform, spectrogram, kernel_plot, delta]
        button.click(classify, [audio_in, rate, compare], outputs, api_name="classify")
        for control in (audio_in, rate, compare):  # the answer follows the clip and the settings
            control.change(on_audio, [audio_in, rate, compare], outputs, api_name=False)
        compare.change(lambda show: gr.update(visible=show), [compare], [label_raw], api_name=False)
        rate.change(on_rate, [rate], [note, kernel_plot, delta], api_name=False)
        # Live mode opens once the page's load event has answered: a Record pressed while it was still in flight
        # could lose the stream's start on a busy server (Gradio's client; nothing then reached the server).
        demo.load(
            lambda choice: (*on_rate(choice), gr.update(interactive=bundle is not None)),
            [rate], [note, kernel_plot, delta, mic], api_name=False,
        )  # fmt: skip
        live_outputs = [live_label, live_status, live_heard, session]
        mic.start_recording(lambda: (None, "", [], None), None, live_outputs, api_name=False)
        mic.stream(
            live, [mic, session, rate, engine], live_outputs,
            stream_every=STREAM_EVERY, time_limit=TIME_LIMIT_SECONDS + 5, api_name=False,
        )  # fmt: skip  # the session stops hearing at TIME_LIMIT_SECONDS and says so; Gradio ends the stream later
        mic.stop_recording(live_finish, [session], live_outputs, api_name=False)
    return demo


def _file_panel() -> tuple:
    """Give a clip, see the answer: (audio, rate, rate note, compare, button, label, label_raw, status, commands
    heard, waveform, spectrogram)."""
    with gr.Row():
        with gr.Column(scale=1):
            audio_in = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="1. Record or upload a clip (any rate)",
                elem_id="audio_in",
            )  # fmt: skip
            rate = gr.Dropdown(
                RATE_CHOICES, value="16000", label="2. The rate the model hears", allow_custom_value=True,
                elem_id="rate",
            )  # fmt: skip
            note = gr.Markdown(elem_id="rate_note")
            compare = gr.Checkbox(label="Also show the answer without stretching Δ", value=False, elem_id="compare")
            button = gr.Button("Classify", variant="primary", elem_id="classify_btn")
            example_files = sorted(str(p) for p in EXAMPLES.glob("*.wav"))
            if example_files:
                gr.Examples(
                    [[f, "8000" if "8k" in Path(f).stem else "16000"] for f in example_files],
                    [audio_in, rate], label="Example clips (real voices the model never heard)", examples_per_page=13,
                )  # fmt: skip
        with gr.Column(scale=1):
            label = gr.Label(num_top_classes=3, label="What the model heard", elem_id="label")
            label_raw = gr.Label(num_top_classes=3, label="With Δ unchanged", visible=False, elem_id="label_raw")
            status = gr.Markdown(elem_id="status")
            timeline = gr.Dataframe(
                headers=HEARD_HEADERS, value=[], label="Commands heard (in order)", interactive=False,
                elem_id="timeline",
            )  # fmt: skip
    with gr.Row():
        waveform = gr.Plot(label="Waveform, with the commands heard", elem_id="waveform")
        spectrogram = gr.Plot(label="Spectrogram", elem_id="spectrogram")
    return audio_in, rate, note, compare, button, label, label_raw, status, timeline, waveform, spectrogram


def _live_panel(bundle: LoadedModel | None) -> tuple:
    """The live-mode components: (label, status, commands heard, microphone, engine choice)."""
    with gr.Group():
        gr.Markdown(live_note(bundle), elem_id="live_note")
        with gr.Row():
            mic = gr.Audio(
                sources=["microphone"], streaming=True, label="Microphone (live)", elem_id="live_in",
                interactive=False,  # until the page has loaded (build_demo)
            )  # fmt: skip
            engines = available_engines(bundle)
            engine = gr.Radio(
                list(engines), value=engines[0], label="Live engine", elem_id="live_engine",
                info="auto: the recurrent step view while it keeps up, else windows" if len(engines) > 1
                else "the only engine this model can run",
            )  # fmt: skip
        with gr.Row():
            live_label = gr.Label(num_top_classes=3, label="Live prediction", elem_id="live_label")
            live_heard = gr.Dataframe(
                headers=HEARD_HEADERS, value=[], label="Commands heard (newest first)", interactive=False,
                elem_id="live_heard",
            )  # fmt: skip
        live_status = gr.Markdown(elem_id="live_status")
    return live_label, live_status, live_heard, mic, engine


def _science(bundle: LoadedModel | None) -> tuple:
    """The collapsible parts: the model card (with its rate sweep), and Δ with the kernels → (kernel plot, Δ table)."""
    if bundle is not None:
        with gr.Accordion("The model: what it is, what it learned from, how well it does", open=False):
            gr.Markdown(bundle.describe(), elem_id="model_info")
            if bundle.rate_sweep_png is not None:
                gr.Image(
                    str(bundle.rate_sweep_png), label="Accuracy against the input's sampling rate",
                    interactive=False, elem_id="rate_sweep",
                )  # fmt: skip
                gr.Markdown(SWEEP_CAPTION, elem_id="rate_sweep_caption")
    with gr.Accordion("How one model hears every rate: its time step Δ and its kernels", open=False):
        gr.Markdown(DELTA_TEXT)
        delta = gr.Markdown(elem_id="delta")
        kernel_plot = gr.Plot(label="Learned kernels of the first SSM layer at the chosen rate", elem_id="kernels")
        gr.Markdown(KERNEL_CAPTION, elem_id="kernel_caption")
    return kernel_plot, delta
