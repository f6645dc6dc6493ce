"""The app's handlers, called directly: predictions equal training.inference's, dt_scale, bad input, live mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from app import handlers, streaming
from app.__main__ import main
from app.ui import build_demo
from training.audio import load_audio, resample
from training.export import FORMAT, ModelFileError, export_model, load_model
from training.inference import predict_logits, prepare

EXAMPLES = Path(handlers.__file__).parent / "examples"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


@pytest.fixture(scope="module")
def bundle(tiny_s4_export: Path) -> handlers.LoadedModel:
    return handlers.load_bundle(tiny_s4_export)


@pytest.fixture(scope="module")
def reference(tiny_s4_export: Path) -> tuple[torch.nn.Module, dict]:
    """The same export loaded plainly (no kernel cache): what training.evaluate would run."""
    return load_model(tiny_s4_export)


def _reference_probs(reference, wave: torch.Tensor, rate: int, rescale: bool = True) -> dict[str, float]:
    model, meta = reference
    logits = predict_logits(model, meta, wave[None], rate, rescale=rescale)[0]
    return dict(zip(meta["classes"], torch.softmax(logits, -1).tolist(), strict=True))


def _assert_close(a: dict[str, float], b: dict[str, float], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=atol)


def _spy_dt_scales(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module) -> list[float]:
    calls: list[float] = []
    forward = model.forward

    def spy(waveform: torch.Tensor, dt_scale: float = 1.0) -> torch.Tensor:
        calls.append(dt_scale)
        return forward(waveform, dt_scale)

    monkeypatch.setattr(model, "forward", spy)
    return calls


def _write(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> str:
    sf.write(path, samples, rate, subtype=subtype)
    return str(path)


def _raw(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_examples_one_per_word_and_small() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.wav"))
    assert names == sorted([*WORDS, "go_8k"])
    assert sf.info(EXAMPLES / "go_8k.wav").samplerate == 8000
    assert sum(p.stat().st_size for p in EXAMPLES.iterdir()) < 500_000


def test_classify_matches_predict_logits_at_16k(bundle, reference) -> None:
    path = EXAMPLES / "yes.wav"
    result = handlers.classify(bundle, str(path), "16000")
    _assert_close(result.label, _reference_probs(reference, load_audio(path), 16000))
    assert result.dt_scale == 1.0 and result.segments == [] and result.notices == []
    assert "dt_scale = 16000/16000 = 1" in result.status


def test_8k_path_uses_dt_scale_2(bundle, reference, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_dt_scales(monkeypatch, bundle.model)
    path = EXAMPLES / "stop.wav"
    result = handlers.classify(bundle, str(path), "8000", compare=True)
    assert calls == [2.0, 1.0]  # re-discretised, then the side-by-side run without
    wave_8k = prepare(load_audio(path), 16000, 8000)
    _assert_close(result.label, _reference_probs(reference, wave_8k, 8000))
    _assert_close(result.label_raw, _reference_probs(reference, wave_8k, 8000, rescale=False))
    assert "| re-discretised | 8000 Hz | 2 |" in result.status


def test_native_rate_of_an_8k_file(bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_dt_scales(monkeypatch, bundle.model)
    assert handlers.classify(bundle, str(EXAMPLES / "go_8k.wav"), "native").rate == 8000
    assert handlers.classify(bundle, str(EXAMPLES / "go_8k.wav"), "16000").rate == 16000  # upsampled
    assert calls == [2.0, 1.0]


@pytest.mark.parametrize(("suffix", "subtype"), [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_stereo_44k_compressed_formats(bundle, tmp_path: Path, suffix: str, subtype: str) -> None:
    wave = resample(load_audio(EXAMPLES / "up.wav"), 16000, 44100).numpy()
    path = _write(tmp_path / f"up.{suffix}", np.stack([wave, 0.5 * wave], 1), 44100, subtype)
    result = handlers.classify(bundle, path, "16000")
    assert set(result.label) == set(WORDS) and "resampled from the file's 44100 Hz" in result.status


def test_long_clip_scanned_with_sliding_window(bundle, tmp_path: Path) -> None:
    yes, no = load_audio(EXAMPLES / "yes.wav"), load_audio(EXAMPLES / "no.wav")
    clip = torch.cat([yes, torch.zeros(16000), no])  # 3 s: a word, a second of silence, a word
    result = handlers.classify(bundle, _write(tmp_path / "long.wav", clip.numpy(), 16000), "16000")
    assert result.segments and all(0 <= s.start < s.end <= 3.0 and s.word in WORDS for s in result.segments)
    assert result.timeline()[0][2] in WORDS and "window every 0.25 s" in result.status


def test_sliding_windows_cover_the_whole_clip() -> None:
    windows, starts = handlers.sliding_windows(torch.arange(10.0), 4, 3)
    assert starts == [0, 3, 6] and windows[-1].tolist() == [6, 7, 8, 9]
    windows, starts = handlers.sliding_windows(torch.ones(3), 4, 3)
    assert starts == [0] and windows.tolist() == [[1, 1, 1, 0]]


def test_kernel_plot_and_delta(bundle) -> None:
    figure = handlers.kernel_figure(bundle, 8000)
    assert len(figure.axes) == 4 and "8000 Hz" in figure.axes[0].get_title()
    table = handlers.delta_table(bundle, 8000, compare=True)
    assert "| not re-discretised | 8000 Hz | 1 |" in table


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: _write(d / "silence.wav", np.zeros(16000, np.float32), 16000), "silent"),
        (lambda d: _raw(d / "empty.wav", b""), "zero-length"),
        (lambda d: _raw(d / "bad.wav", b"RIFF not really a wave" * 50), "corrupt"),
        (lambda d: _write(d / "nan.wav", np.full(16000, np.nan, np.float32), 16000, "FLOAT"), "NaN"),
        (lambda d: str(d / "missing.wav"), "not found"),
        (lambda d: None, "No audio yet"),
    ],
    ids=["silence", "empty", "corrupt", "nan", "missing", "none"],
)
def test_bad_input_gives_a_message(bundle, tmp_path: Path, make, expected: str) -> None:
    result = handlers.classify(bundle, make(tmp_path), "16000")
    assert result.label is None
    assert expected in result.status and result.notices


def test_pure_noise_is_flagged(bundle, tmp_path: Path) -> None:
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    result = handlers.classify(bundle, _write(tmp_path / "noise.wav", noise, 16000), "16000")
    assert result.label is not None and any("noise rather than speech" in n for n in result.notices)
    assert not any("noise" in n for n in handlers.classify(bundle, str(EXAMPLES / "on.wav"), "16000").notices)


def test_ten_minute_file_is_cut_to_the_limit(bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rate = 4000  # a small rate keeps the file and the scan quick; the limit is in seconds
    word = resample(load_audio(EXAMPLES / "left.wav"), 16000, rate).numpy()
    path = _write(tmp_path / "ten_minutes.wav", np.tile(word, 600), rate)
    calls = _spy_dt_scales(monkeypatch, bundle.model)
    result = handlers.classify(bundle, path, "native")
    assert any("lasts 600 s: only its first 60 s" in n for n in result.notices)
    assert result.segments[-1].end <= handlers.MAX_SECONDS and set(calls) == {4.0}


def test_bad_rate_and_no_model(bundle) -> None:
    assert "not a number of Hz" in handlers.classify(bundle, str(EXAMPLES / "yes.wav"), "fast").status
    assert "outside" in handlers.classify(bundle, str(EXAMPLES / "yes.wav"), "100").status
    assert "No model is loaded" in handlers.classify(None, str(EXAMPLES / "yes.wav")).status


def test_model_file_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError):
        handlers.load_bundle(bogus)
    assert main(["--model", str(bogus)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot load model") and "\n" not in error


def test_model_description_names_synthetic_data_and_accuracy(bundle) -> None:
    text = bundle.describe()
    assert "SYNTHETIC" in text and "test accuracy 16000: 10.0%" in text


# ---- live mode --------------------------------------------------------------------------------------------


def _chunks(wave: torch.Tensor, rate: int, seconds: float = 0.25) -> list[tuple[int, np.ndarray]]:
    """A clip as the browser streams it: int16 chunks at the microphone's rate."""
    pcm = (wave.numpy() * 32767).astype(np.int16)
    size = int(seconds * rate)
    return [(rate, pcm[i : i + size]) for i in range(0, pcm.shape[0], size)]


def test_live_step_view_equals_forward(bundle) -> None:
    wave = load_audio(EXAMPLES / "right.wav")[4000:12000]  # half a second keeps Python stepping quick
    session, label = None, None
    for chunk in _chunks(resample(wave, 16000, 48000), 48000):
        label, status, session = streaming.live_step(bundle, chunk, session, "16000", "step")
    assert session.using == "step" and "recurrent step view" in status and "real time" in status
    # The samples through `step`, then head(mean of the features), is forward on those samples.
    forward = predict_logits(bundle.model, bundle.meta, session.audio[None], 16000)[0]
    _assert_close(label, handlers.probabilities(forward, list(WORDS)), atol=1e-4)


def test_live_8k_steps_with_dt_scale_2(bundle) -> None:
    session = None
    for chunk in _chunks(load_audio(EXAMPLES / "go.wav")[4000:12000], 16000):
        label, _, session = streaming.live_step(bundle, chunk, session, "8000", "step")
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


def test_live_window_fallback_and_auto(bundle) -> None:
    for engine in ("window", "auto"):
        session = None
        for chunk in _chunks(load_audio(EXAMPLES / "off.wav"), 16000):
            label, status, session = streaming.live_step(bundle, chunk, session, "16000", engine)
        assert set(label) == set(WORDS) and session.step_rtf is not None or engine == "window"
        assert ("fallback" in status) == (session.using == "window")


def test_live_bad_chunks(bundle) -> None:
    label, status, session = streaming.live_step(bundle, (16000, np.full(800, np.nan, np.float32)), None)
    assert label is None and "NaN" in status
    label, status, session = streaming.live_step(bundle, (16000, np.zeros(8000, np.int16)), None)
    assert label is None and "silence" in status
    assert streaming.live_step(bundle, None, None)[1].startswith("Press Record")


@pytest.mark.parametrize("kind", ["bidirectional", "cnn"])
def test_non_causal_models_disable_live_mode(tmp_path: Path, tiny_s4_export: Path, kind: str) -> None:
    model, meta = load_model(tiny_s4_export)
    if kind == "cnn":
        from training.cnn import M5

        meta = {**meta, "model": "cnn", "model_kwargs": {"n_classes": 10, "n_channels": 4}}
        model = M5(**meta["model_kwargs"])
    else:
        meta = {**meta, "model_kwargs": {**meta["model_kwargs"], "bidirectional": True}}
        from s4 import S4Classifier

        model = S4Classifier(**meta["model_kwargs"])
    other = handlers.load_bundle(export_model(model.eval(), {**meta, "format": FORMAT}, tmp_path / "m.safetensors"))
    _, status, _ = streaming.live_step(other, (16000, np.zeros(1600, np.int16)), None)
    assert "Live mode needs a causal S4 model" in status
    assert build_demo(other) is not None  # the UI builds, with live mode switched off
    result = handlers.classify(other, str(EXAMPLES / "yes.wav"), "8000")
    assert set(result.label) == set(WORDS)
    assert (result.kernels is None) == (kind == "cnn")


def test_bundled_model(reference) -> None:
    if not handlers.DEFAULT_MODEL.is_file():
        pytest.skip(f"bundled model {handlers.DEFAULT_MODEL} not present")
    bundled = handlers.load_bundle(handlers.DEFAULT_MODEL)
    assert bundled.meta["data"]["synthetic"] is True and "SYNTHETIC" in bundled.describe()
    model, meta = load_model(handlers.DEFAULT_MODEL)
    right = 0
    for word in WORDS:
        result = handlers.classify(bundled, str(EXAMPLES / f"{word}.wav"), "16000")
        _assert_close(result.label, _reference_probs((model, meta), load_audio(EXAMPLES / f"{word}.wav"), 16000))
        right += max(result.label, key=result.label.get) == word
    assert right >= 5, f"bundled model got only {right}/10 example clips right"
