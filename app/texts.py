"""The words on the page: the introduction, the sentence under the rate control, live mode's note, and the
captions of the science parts. Plain words first; the symbols (Δ, dt_scale) come with what they mean.
"""

from __future__ import annotations

from app.bundle import NATIVE, LoadedModel, RateError, parse_rate
from app.streaming import TIME_LIMIT_SECONDS

COMMANDS = "yes no up down left right on off stop go"

DELTA_TEXT = """An S4 model is a continuous-time system read one sample at a time, with a **time step Δ**
per channel: how much time one sample stands for. It learned with 16 kHz audio. Audio at 8 kHz has half as many
samples per second, so each sample must stand for twice the time: the model runs with Δ × 2, written
**dt_scale** = training rate / input rate = 2. Nothing is retrained. The table gives Δ·dt_scale over the model's
channels and the **SSM time unit**, 1 / (Δ·dt_scale): how many samples, and how many milliseconds, one unit of the
model's internal time spans. Stretching Δ ("re-discretising") keeps that unit the same number of milliseconds at
every rate; leaving Δ unchanged would make the model hear 8 kHz speech twice as fast as it is."""

KERNEL_CAPTION = """*What to look for:* each panel is one channel of the first SSM layer, its **kernel** (how it
responds over time to a click), drawn against milliseconds. Lines: at the training rate; dots: at the chosen rate
with Δ stretched (divided by dt_scale, so both share one scale). The dots lie on the lines: at the new rate the
model responds over the same milliseconds, which is why it still recognises the words."""

SWEEP_CAPTION = """*What to look for:* accuracy on the command words, for speakers the model never heard, against
the sampling rate of the input (log scale; the grey line is the training rate). **Δ rescaled** (solid): this model
stretching its time step to each rate. **Δ unchanged** (dashed): the same model treating every input as if it were
at the training rate. A **no Δ** line, where drawn, is a small CNN (M5) trained on the same recordings for
comparison: it has no time step to adjust. Dotted: chance. Far below the training rate the recording no longer
holds the frequencies that tell the words apart."""


def intro(bundle: LoadedModel | None) -> str:
    """The heading and the first lines a person reads."""
    text = (
        f"# S4 speech commands\nSay one of **{COMMANDS}**: record it or upload a recording, and the model names "
        "the command it hears."
    )
    if bundle is not None and bundle.rejects:
        text += " Anything else is answered with **not a command**, and quiet or noise with **silence**."
    if bundle is not None:
        text += f" It learned from {bundle.train_rate / 1000:g} kHz audio and hears other rates without retraining."
    return text


def rate_note(bundle: LoadedModel | None, choice: str | None) -> str:
    """The sentence under the rate control, for a valid setting (RateError's message otherwise)."""
    if bundle is None:
        return ""
    try:
        rate = parse_rate(choice, bundle.train_rate)
    except RateError as error:
        return f"⚠️ {error}"
    live = " Live mode hears at this rate too."
    train = f"{bundle.train_rate / 1000:g} kHz"
    if choice is None or str(choice).strip().lower() in (NATIVE, ""):
        how = f", stretching its time step Δ by {train} / that rate" if bundle.kind == "s4" else ""
        return f"The model hears each clip at its own rate{how}. Live mode hears at the microphone's rate."
    heard = f"The model hears **{rate / 1000:g} kHz**"
    if bundle.kind != "s4":
        return f"{heard}: the clip is resampled to it (this CNN has no time step to stretch).{live}"
    scale = bundle.train_rate / rate
    if rate == bundle.train_rate:
        return f"{heard}, the rate it learned at: its time step Δ is used as learned.{live}"
    change = (
        f"stretches its time step Δ by **{scale:.3g}**" if scale > 1 else f"shrinks its time step Δ to **{scale:.3g}×**"
    )
    return f"{heard}: it {change} ({train} / {rate / 1000:g} kHz) instead of being retrained.{live}"


def live_note(bundle: LoadedModel | None) -> str:
    """What live mode does, with the rate and the microphone, and for how long."""
    if bundle is None:
        return "## Live mode\n⚠️ No model is loaded."
    if bundle.causal:
        engine = "This model can also step its recurrent view sample by sample (engine: step, or auto)."
    else:
        engine = f"It classifies one-second windows: {bundle.step_view_missing}."
    return (
        "## Live mode\nPress **Record** and say a few commands, with a short pause between them. Your browser "
        "first asks for permission to use the microphone; the sound goes only to this app's server. Each word is "
        "classified once, in the one-second window centred on it, and the commands are listed, newest first. "
        f"Live mode hears at the rate chosen above (the microphone is resampled to it) and listens for up to "
        f"{TIME_LIMIT_SECONDS:.0f} s per recording. {engine}"
    )
