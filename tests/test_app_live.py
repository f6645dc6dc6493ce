"""Live mode, called directly: the voice gate, the list of commands heard, the step and window engines, rates.

A tiny untrained model cannot recognise words, so the list tests use `KeywordStub`, a module with
S4Classifier's forward signature whose answers are known in advance from the window it is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from app import handlers, live, streaming
from app.bundle import LoadedModel, load_bundle, probabilities
from app.ui import build_demo
from training.common.audio import load_audio, resample
from training.serving.export import FORMAT, export_model, load_model
from training.serving.inference import predict_logits

EXAMPLES = Path(handlers.__file__).parent / "examples"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SC12 = [*WORDS, "_silence_", "_unknown_"]


class KeywordStub(nn.Module):
    """forward(waveform (B, L), dt_scale) → logits (B, 12) with known answers, each at 97% confidence:

    - quiet (RMS below −50 dBFS) or noise (a flat spectrum: `handlers.spectral_flatness` > 0.1) → `_silence_`
    - a pure tone (one frequency bin holds most of the energy) → `_unknown_` (a beep is not a command)
    - the energy centroid more than 0.1 window from the middle (a window that cuts the sound) → `_unknown_`
    - otherwise `word`.
    So a command is heard only by a window centred on it. The dt_scales it is called with are recorded.
    """

    def __init__(self, word: str = "stop") -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # predict_logits asks the parameters for the device
        self.word = word
        self.dt_scales: list[float] = []

    def answer(self, wave: torch.Tensor) -> str:
        energy = wave.double().pow(2)
        if 10 * math.log10(float(energy.mean()) + 1e-20) < -50 or handlers.spectral_flatness(wave) > 0.1:
            return "_silence_"
        power = torch.fft.rfft(wave.double()).abs().pow(2)
        if float(power.max() / power.sum()) > 0.3:
            return "_unknown_"
        centroid = float((energy * torch.arange(wave.shape[0])).sum() / energy.sum()) / wave.shape[0]
        return self.word if abs(centroid - 0.5) < 0.1 else "_unknown_"

    causal = False  # like the bundled model: live mode runs windows

    def rescaled_ssms(self) -> list[nn.Module]:
        return []

    def forward(self, waveform: torch.Tensor, dt_scale: float = 1.0) -> torch.Tensor:
        self.dt_scales.append(dt_scale)
        logits = torch.zeros(waveform.shape[0], len(SC12))
        for i, wave in enumerate(waveform):
            logits[i, SC12.index(self.answer(wave))] = 6.0  # softmax: e^6 / (e^6 + 11) = 97%
        return logits


def stub_bundle(word: str = "stop") -> LoadedModel:
    meta = {"format": FORMAT, "model": "s4", "model_kwargs": {}, "sample_rate": 16000, "clip_samples": 16000}
    return LoadedModel(KeywordStub(word), {**meta, "classes": SC12}, Path("stub.safetensors"))


@pytest.fixture(scope="module")
def bundle(tiny_s4_export: Path) -> LoadedModel:
    return load_bundle(tiny_s4_export)


def _chunks(wave: torch.Tensor, rate: int, seconds: float = 0.1) -> list[tuple[int, np.ndarray]]:
    """A clip as the browser streams it: int16 chunks at the microphone's rate."""
    pcm = (wave.clamp(-1, 1).numpy() * 32767).astype(np.int16)
    size = int(seconds * rate)
    return [(rate, pcm[i : i + size]) for i in range(0, pcm.shape[0], size)]


def _stream(bundle, wave: torch.Tensor, mic_rate: int, rate_choice: str = "16000", engine: str = "auto"):
    """Feed `wave` (at mic_rate) through live_step in 0.1 s chunks → (label, status, rows, session) at the end."""
    session, label, status, rows = None, None, "", []
    for chunk in _chunks(wave, mic_rate):
        label, status, rows, session = streaming.live_step(bundle, chunk, session, rate_choice, engine)
    return label, status, rows, session


def _silence(seconds: float, rate: int = 16000) -> torch.Tensor:
    return torch.zeros(round(seconds * rate))


def _with_pauses(clips: list[torch.Tensor], pauses: list[float], rate: int = 16000) -> tuple[torch.Tensor, list]:
    """pause, clip, pause, clip, ..., pause → (the stream, each clip's start in seconds)."""
    parts, starts, at = [_silence(pauses[0], rate)], [], pauses[0]
    for clip, pause in zip(clips, pauses[1:], strict=True):
        starts.append(at)
        parts += [clip, _silence(pause, rate)]
        at += clip.shape[0] / rate + pause
    return torch.cat(parts), starts


# ---- the list of commands heard ---------------------------------------------------------------------------


@pytest.mark.parametrize(("mic_rate", "rate_choice", "dt_scale"), [(48000, "16000", 1.0), (16000, "8000", 2.0)])
def test_a_word_said_three_times_is_listed_three_times(mic_rate: int, rate_choice: str, dt_scale: float) -> None:
    # The word without the clip's quiet ends: half a second, so only a window centred on it hears "stop".
    stop = load_audio(EXAMPLES / "stop.wav")[4000:12800]
    wave, starts = _with_pauses([stop, stop, stop], [0.63, 0.87, 0.51, 1.2])  # pauses of any length
    stub = stub_bundle("stop")
    label, status, rows, session = _stream(stub, resample(wave, 16000, mic_rate), mic_rate, rate_choice)
    assert [row[1:] for row in rows] == [["stop", "97%"]] * 3
    times = [row[0] for row in rows][::-1]  # newest first on screen
    assert all(start - 0.05 <= t <= start + 0.3 for t, start in zip(times, starts, strict=True))
    assert session.listener.closed == 3 and session.dt_scale == dt_scale and set(stub.model.dt_scales) == {dt_scale}
    assert session.using == "window" and "window engine" in status and "no recurrent step view" in status
    assert label["stop"] > 0.9 and "last sound" in status and "**stop** (97%)" in status


def test_silence_noise_and_non_commands_stay_off_the_list() -> None:
    rng = np.random.default_rng(0)
    stop = load_audio(EXAMPLES / "stop.wav")
    noise = torch.tensor(rng.standard_normal(8000), dtype=torch.float32) * 0.1
    beep = 0.3 * torch.sin(2 * math.pi * 1000 * torch.arange(6400) / 16000)
    wave, _ = _with_pauses([stop, noise, beep, stop], [0.5, 0.8, 0.8, 0.8, 1.0])
    _, _, rows, session = _stream(stub_bundle("stop"), wave, 16000)
    assert session.listener.closed == 4  # the gate opened for all four sounds ...
    assert [row[1] for row in rows] == ["stop", "stop"]  # ... and only the commands were listed
    assert rows[0][0] > 3.5 > rows[1][0]


def test_stopping_mid_stream_classifies_what_waits() -> None:
    wave, _ = _with_pauses([load_audio(EXAMPLES / "stop.wav")[:12000]], [0.6, 0.0])  # stopped at the word's end
    _, _, rows, session = _stream(stub_bundle("stop"), wave, 16000)
    assert rows == [] and session.listener.gate.is_open
    label, status, rows, session = streaming.live_finish(session)
    assert [row[1] for row in rows] == ["stop"] and label["stop"] > 0.9
    assert streaming.live_finish(None) == (None, "", [], None)


def test_step_engine_forgets_between_words(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The causal model's recurrent state is reset after each utterance, and the list is classified by
    centred windows: the same clip repeated gets the same answer and the same confidence every time.
    """
    resets = []
    reset = streaming.LiveSession._reset_step
    monkeypatch.setattr(streaming.LiveSession, "_reset_step", lambda self: resets.append(1) or reset(self))
    yes = load_audio(EXAMPLES / "yes.wav")
    wave, _ = _with_pauses([yes, yes, yes], [0.7, 0.7, 0.7, 0.7])
    session = streaming.LiveSession(bundle, 16000, 16000, "step", min_confidence=0.0)  # random model: unsure
    for _, chunk in _chunks(wave, 16000):
        session.feed(torch.from_numpy(chunk.astype(np.float32) / 32767))
    assert session.using == "step" and len(resets) == 1 + 3
    words = {row[1] for row in session.listener.rows()}
    confidences = [h.confidence for h in session.listener.heard]
    assert len(words) == 1 and words <= set(WORDS) and len(confidences) == 3
    assert np.allclose(confidences, confidences[0], atol=1e-4)


def test_list_keeps_the_newest_entries() -> None:
    listener = live.Listener(16000, 16000, lambda clip: {"stop": 0.9, "go": 0.1}, check_noise=False)
    for n in range(live.MAX_ENTRIES + 5):
        listener.waiting.append(live.Utterance(n * 16000, n * 16000 + 8000, n * 16000 + 4000))
        listener.finish()
    assert len(listener.rows()) == live.MAX_ENTRIES and listener.rows()[0] == [
        float(live.MAX_ENTRIES + 4),
        "stop",
        "90%",
    ]


# ---- the voice gate ---------------------------------------------------------------------------------------


def _gate(wave: torch.Tensor, rate: int = 16000, chunk: int = 1600) -> list[live.Utterance]:
    gate, closed = live.VoiceGate(rate, rate), []
    for i in range(0, wave.shape[0], chunk):
        closed += gate.push(wave[i : i + chunk])
    return closed + gate.flush()


@pytest.mark.parametrize("rate", [16000, 8000])
def test_gate_finds_a_sound_and_its_centre(rate: int) -> None:
    tone = 0.2 * torch.sin(2 * math.pi * 440 * torch.arange(round(0.4 * rate)) / rate)
    wave = torch.cat([_silence(0.77, rate), tone, _silence(1.0, rate)])
    (utterance,) = _gate(wave, rate)
    assert abs(utterance.centre / rate - (0.77 + 0.2)) < 0.005
    assert abs(utterance.start / rate - 0.77) <= live.FRAME_SECONDS and utterance.end / rate < 1.2


def test_gate_follows_the_noise_floor() -> None:
    rng = np.random.default_rng(1)
    noise = torch.tensor(rng.standard_normal(16000 * 4), dtype=torch.float32) * 0.01  # −40 dBFS, steady
    assert _gate(noise) == []  # a steady room is not a voice, once the floor has been measured
    # The word is spoken in the room: added to its noise, not spliced in (a recording's own quiet moments would
    # otherwise drop the floor below the room for FLOOR_SECONDS).
    word = load_audio(EXAMPLES / "off.wav") * 4
    room = torch.cat([noise, noise[:16000], noise])
    room[64000:80000] += word
    (utterance,) = _gate(room)
    assert 4.0 < utterance.centre / 16000 < 5.0


def test_gate_ignores_clicks_and_splits_endless_sound() -> None:
    click = torch.cat([_silence(1.0), torch.full((80,), 0.5), _silence(1.0)])  # 5 ms
    assert _gate(click) == []
    hum = torch.cat([_silence(0.5), 0.3 * torch.sin(2 * math.pi * 200 * torch.arange(40000) / 16000)])  # 2.5 s
    assert [round((u.end - u.start) / 16000, 2) for u in _gate(hum)][:2] == [1.0, 1.0]


def _tone(dbfs: float, seconds: float, rate: int = 16000) -> torch.Tensor:
    """A 440 Hz sine whose RMS level is `dbfs`."""
    return math.sqrt(2) * 10 ** (dbfs / 20) * torch.sin(2 * math.pi * 440 * torch.arange(round(seconds * rate)) / rate)


@pytest.mark.parametrize("room_rms", [0.0, 1e-4], ids=["digital silence", "dither at -80 dBFS"])
def test_after_silence_a_sound_must_also_reach_the_absolute_floor(room_rms: float) -> None:
    """A silent room puts the measured floor very low (−120 dB for zeros): being OPEN_DB above it is not enough, a
    sound must also reach MIN_OPEN_DBFS. 5 dB under it (still 20+ dB above the room) stays closed; 5 dB over opens."""
    rng = np.random.default_rng(2)
    room = [torch.tensor(rng.standard_normal(16000), dtype=torch.float32) * room_rms for _ in range(2)]
    for level, opens in ((live.MIN_OPEN_DBFS - 5, False), (live.MIN_OPEN_DBFS + 5, True)):
        assert level > -80 + live.OPEN_DB + 10  # far above the room: only the absolute floor can keep it out
        utterances = _gate(torch.cat([room[0], _tone(level, 0.4), room[1]]))
        assert len(utterances) == opens, level
    assert abs(utterances[0].centre / 16000 - 1.2) < 0.01


@pytest.mark.parametrize(("confidence", "listed"), [(live.MIN_CONFIDENCE - 0.01, False), (live.MIN_CONFIDENCE, True)])
def test_commands_under_min_confidence_stay_off_the_list(confidence: float, listed: bool) -> None:
    """The utterance is heard and classified (the label shows it) either way; the list takes it only when the model
    is at least MIN_CONFIDENCE sure. The rest of the probability is spread so that "stop" stays on top."""
    label = {"stop": confidence, "go": (1 - confidence) / 2, "yes": (1 - confidence) / 2}
    listener = live.Listener(16000, 16000, lambda clip: label, check_noise=False)
    wave = torch.cat([_silence(0.5), _tone(-20.0, 0.4), _silence(1.2)])
    for start in range(0, wave.shape[0], 1600):
        listener.push(wave[start : start + 1600])
    listener.finish()
    assert listener.closed == 1 and listener.last[1] == label
    assert listener.rows() == ([[0.5, "stop", f"{confidence:.0%}"]] if listed else [])


def _pieces(wave: torch.Tensor, sizes) -> list[torch.Tensor]:
    """`wave` cut into consecutive pushes of `sizes` (an int: all alike), the last one whatever remains."""
    sizes = iter([sizes] * wave.shape[0] if isinstance(sizes, int) else sizes)
    pieces, start = [], 0
    while start < wave.shape[0]:
        size = next(sizes)
        pieces.append(wave[start : start + size])
        start += size
    return pieces


def test_gate_and_list_do_not_depend_on_the_push_size() -> None:
    """The same stream pushed whole, in 0.1 s chunks, in 441-, 7-sample or random pieces: the same utterances, to
    the sample, and the list classifies the same windows."""
    rng = np.random.default_rng(3)
    word = load_audio(EXAMPLES / "off.wav") * 4
    wave, _ = _with_pauses([word, _tone(-30.0, 0.3), word], [0.9, 0.6, 0.45, 1.1])
    wave = wave + torch.tensor(rng.standard_normal(wave.shape[0]), dtype=torch.float32) * 0.003  # a room to follow
    splits = [wave.shape[0], 1600, 441, 7, rng.integers(1, 5000, wave.shape[0]).tolist()]

    def gate(sizes) -> list[live.Utterance]:
        gate = live.VoiceGate(16000, 16000)
        return [u for piece in _pieces(wave, sizes) for u in gate.push(piece)] + gate.flush()

    def listen(sizes) -> tuple[list, list[torch.Tensor]]:
        clips = []
        listener = live.Listener(16000, 16000, lambda clip: clips.append(clip) or {"stop": 0.9}, check_noise=False)
        for piece in _pieces(wave, sizes):
            listener.push(piece)
        listener.finish()
        return listener.rows(), clips

    whole = gate(wave.shape[0])
    assert len(whole) == 3 and all(gate(sizes) == whole for sizes in splits[1:])
    rows, clips = listen(wave.shape[0])
    assert len(rows) == 3
    for sizes in (1600, splits[-1]):  # the 7-sample pushes would only slow the suite: the gate is what they test
        other_rows, other_clips = listen(sizes)
        assert other_rows == rows and all(torch.equal(a, b) for a, b in zip(other_clips, clips, strict=True))


# ---- engines and models -----------------------------------------------------------------------------------


def test_live_step_view_equals_forward(bundle) -> None:
    wave = load_audio(EXAMPLES / "right.wav")[4000:12000]  # half a second keeps Python stepping quick
    label, status, _, session = _stream(bundle, resample(wave, 16000, 48000), 48000, engine="step")
    assert session.using == "step" and "recurrent step view" in status and "real time" in status
    assert session.listener.closed == 0  # still hearing the word: no reset, the label is the step view's
    # The samples through `step`, then head(mean of the features), is forward on those samples.
    forward = predict_logits(bundle.model, bundle.meta, session.audio[None], 16000)[0]
    expected = probabilities(forward, list(WORDS))
    assert np.allclose([label[k] for k in expected], list(expected.values()), atol=1e-4)


def test_live_8k_steps_with_dt_scale_2(bundle) -> None:
    word = load_audio(EXAMPLES / "go.wav")
    first = min(max(int(word.abs().argmax()) - 4000, 0), 8000)  # half a second around the word's loudest sample
    label, _, _, session = _stream(bundle, word[first : first + 8000], 16000, "8000", "step")
    held_back = session.resampler.margin  # samples the resampler waits on for its look-ahead
    assert session.dt_scale == 2.0 and session.audio.shape[0] == 4000 - held_back // 2 and set(label) == set(WORDS)


@pytest.mark.parametrize(("orig", "new"), [(48000, 16000), (44100, 16000), (16000, 8000), (8000, 16000)])
def test_stream_resampler_matches_whole_resampling(orig: int, new: int) -> None:
    wave = torch.randn(orig // 2)
    resampler = streaming.StreamResampler(orig, new)
    sizes = np.random.default_rng(0).integers(1, orig // 10, 40)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(resampler.push(wave[start : start + size]))
        start += size
    streamed, whole = torch.cat(pieces), resample(wave[:start], orig, new)
    assert whole.shape[0] - streamed.shape[0] <= (resampler.margin + resampler.o) * new // orig + 1
    assert torch.allclose(streamed, whole[: streamed.shape[0]], atol=1e-5)


def test_live_window_engine_and_the_measured_speed(bundle) -> None:
    label, status, _, session = _stream(bundle, load_audio(EXAMPLES / "off.wav"), 16000, engine="window")
    assert set(label) == set(WORDS) and session.using == "window" and "window engine" in status and "(chosen)" in status
    assert session.step_rtf is None  # the window engine never steps, so it measures nothing
    label, status, _, session = _stream(bundle, load_audio(EXAMPLES / "off.wav")[:4000], 16000, engine="auto")
    assert session.step_rtf is not None and session.step_rtf > 0  # "auto" measured the step view on the first chunk


@pytest.mark.parametrize(
    ("rtf", "using", "why"), [(0.4, "step", "(the model is causal)"), (2.5, "window", "(fallback: stepping measured")]
)
def test_auto_engine_follows_the_step_speed(bundle, rtf: float, using: str, why: str) -> None:
    """The speed is given, not measured: each branch of "auto" is taken whatever the machine's load."""
    session = streaming.LiveSession(bundle, 16000, 16000, "auto", step_rtf=rtf)
    for _, chunk in _chunks(load_audio(EXAMPLES / "off.wav"), 16000):
        session.feed(torch.from_numpy(chunk.astype(np.float32) / 32767))
    assert session.using == using and session.step_rtf == rtf and why in session.status()
    assert ("recurrent step view" in session.status()) == (using == "step")
    forced = streaming.LiveSession(bundle, 16000, 16000, "step", step_rtf=2.5)  # asked for: kept even when slow
    assert forced.using == "step"


def test_engines_offered_are_those_the_model_can_run(bundle, tiny_sc12_bidirectional_export: Path) -> None:
    bidirectional = load_bundle(tiny_sc12_bidirectional_export)
    assert streaming.available_engines(bundle) == ("auto", "step", "window")
    assert streaming.available_engines(bidirectional) == ("window",)
    for model, offered in ((bundle, ["auto", "step", "window"]), (bidirectional, ["window"])):
        radio = _component(build_demo(model), "live_engine")
        assert [choice[1] for choice in radio.choices] == offered and radio.value == offered[0]


def _component(demo, elem_id: str):
    (component,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id]
    return component


def test_time_limit_holds_and_is_shown() -> None:
    """A recording streams for longer than the limit: what comes after it is not heard, and the page says so."""
    rng = np.random.default_rng(0)
    wave = torch.tensor(rng.standard_normal(16000 * 36), dtype=torch.float32) * 1e-3  # 36 s of a quiet room
    _, status, _, session = _stream(stub_bundle("stop"), wave, 16000)
    assert session.heard == pytest.approx(streaming.TIME_LIMIT_SECONDS, abs=0.1)
    assert f"Stopped listening after {streaming.TIME_LIMIT_SECONDS:.0f} s" in status
    assert "30.0 s of 30 s heard" in status
    unlimited = streaming.LiveSession(stub_bundle("stop"), 16000, 16000)  # a program's session (benchmarks): no limit
    for _, chunk in _chunks(wave, 16000, seconds=1.0):
        unlimited.feed(torch.from_numpy(chunk.astype(np.float32) / 32767))
    assert unlimited.heard == pytest.approx(36.0) and "Stopped" not in unlimited.status()


def test_a_server_that_falls_behind_says_so() -> None:
    """The clock is given: 0.5 s chunks that take 1.5 s each to arrive leave the server further behind each time."""
    now = [0.0]
    session = streaming.LiveSession(stub_bundle("stop"), 16000, 16000, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 0.5  # in time: no warning
        session.feed(torch.zeros(8000))
    assert session.behind == pytest.approx(0.0) and "behind" not in session.status()
    for _ in range(4):
        now[0] += 1.5
        session.feed(torch.zeros(8000))
    assert session.behind == pytest.approx(4.0) and "⚠️ The server is busy and 4 s behind" in session.status()


def test_live_bad_chunks(bundle) -> None:
    label, status, _, session = streaming.live_step(bundle, (16000, np.full(800, np.nan, np.float32)), None)
    assert label is None and "NaN" in status
    label, status, rows, session = streaming.live_step(bundle, (16000, np.zeros(8000, np.int16)), None)
    assert label is None and "silence" in status and rows == []
    assert streaming.live_step(bundle, None, None)[1].startswith("Press Record")
    assert "No model is loaded" in streaming.live_step(None, None, None)[1]


@pytest.mark.parametrize("kind", ["sc12-bidirectional", "cnn"])
def test_models_without_a_step_view_run_the_window_engine(
    tmp_path: Path, tiny_s4_export: Path, tiny_sc12_bidirectional_export: Path, kind: str
) -> None:
    if kind == "cnn":
        from training.serving.cnn import M5

        _, meta = load_model(tiny_s4_export)
        meta = {**meta, "model": "cnn", "model_kwargs": {"n_classes": 10, "n_channels": 4}}
        other = load_bundle(export_model(M5(**meta["model_kwargs"]).eval(), meta, tmp_path / "m.safetensors"))
        names, reason = set(WORDS), "a CNN has no recurrent step view"
    else:
        other = load_bundle(tiny_sc12_bidirectional_export)
        names, reason = {*WORDS, "silence", "not a command"}, "the model is bidirectional"
    for engine in ("auto", "step"):  # asking for the step view cannot get it
        label, status, _, session = _stream(other, load_audio(EXAMPLES / "off.wav"), 16000, engine=engine)
        assert session.using == "window" and set(label) == names
        assert "window engine" in status and reason in status
