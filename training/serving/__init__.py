"""The serving face: what it takes to run an exported model on audio at any sampling rate, and nothing of training.

The demo (`app/`) and the notebook import these names from `training.serving` and nothing else of `training/`
(tests/test_layout.py checks it); a model file written by `python -m training.train` is all they need.

    model, meta = load_model("app/default_model/s4-sc12-real.safetensors")  # eval mode, on the CPU
    wave, rate = load_audio_with_rate("clip.wav")                           # mono float32 (L,), the file's rate
    wave_8k = prepare(wave[None], rate, 8000)                               # (1, L) → (1, L · 8000 / rate)
    logits = predict_logits(model, meta, wave_8k, 8000)                    # S4 runs with Δ · 16000 / 8000

    export     the model file: weights (.safetensors) and a JSON that says how to rebuild and describe them
    models     the model kinds an export may name ("s4": `s4.S4Classifier`, "cnn": the M5 baseline in `cnn`)
    ensemble   several exports of one recipe as one model (the mean of their logits)
    inference  Δ rescaling: `dt_scale = training rate / input rate`, and logits for a batch or a dataset

Audio loading is `training.common.audio`, shared with the data room so that the demo hears a file as training did.
Imports: `training.common` and `s4` only.
"""

from training.common.audio import AudioError, load_audio, load_audio_with_rate, pad_or_trim, resample, to_mono_float32
from training.serving.export import ModelFileError, load_model
from training.serving.inference import DOWNSAMPLE, dt_scale_for, dt_scale_used, predict_logits, prepare

__all__ = [
    "DOWNSAMPLE", "AudioError", "ModelFileError", "dt_scale_for", "dt_scale_used", "load_audio", "load_audio_with_rate",
    "load_model", "pad_or_trim", "predict_logits", "prepare", "resample", "to_mono_float32",
]  # fmt: skip
