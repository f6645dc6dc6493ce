"""The application-level benchmark cases, built inside the child process that `benchmarks.common` starts:

- "recipe":   one training step (forward, label-smoothed cross-entropy, backward, gradient clipping, AdamW)
              of the model a training config describes, on random waveforms (no data loading or augmentation);
- "evaluate": `training.evaluation.evaluate.evaluate_model` over a folder of clips at 16 kHz and 8 kHz;
- "live":     10 s of audio fed in 0.1 s chunks through the app's `LiveSession`, one thread.

A model comes from an exported file when the case names one that exists, else it is a randomly initialised
model of the case's config (same architecture, same cost).
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).absolute().parents[1]  # not resolved: a baseline tree links this file from the checkout
CLASSES = {"sc10": 10, "sc12": 12, "sc35": 35}
LIVE_CHUNK_SECONDS = 0.1


def config_model(config_path: str) -> tuple[torch.nn.Module, dict, dict]:
    """A randomly initialised model of a training config → (model, export-style meta, validated config)."""
    from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES, SC35_CLASSES
    from training.fitting.config import load_config, validate
    from training.serving.models import build_model

    config = validate(load_config(ROOT / config_path))
    subset = config["data"]["subset"]
    options = {k: v for k, v in config["model"].items() if k != "kind"}
    model = build_model(config["model"]["kind"], n_classes=CLASSES[subset], **options)
    classes = {"sc10": SC10_CLASSES, "sc12": SC12_CLASSES, "sc35": SC35_CLASSES}[subset]
    meta = {"model": config["model"]["kind"], "sample_rate": 16000, "clip_samples": 16000, "classes": list(classes)}
    meta["model_kwargs"] = {"n_classes": CLASSES[subset], **options}
    return model, meta, config


def load(case) -> tuple[torch.nn.Module, dict]:
    """The case's exported model when its file exists, else a random one of its config."""
    if case.model and (ROOT / case.model).is_file():
        from training.serving import load_model

        return load_model(ROOT / case.model)
    model, meta, _ = config_model(case.config)
    return model.eval(), meta


def recipe_step(case, L: int):
    """One optimiser step of the config's model on a (batch, L) random waveform batch."""
    from s4.model import param_groups

    model, _, config = config_model(case.config)
    device = torch.device(case.device)
    model = model.to(device).train()
    optim = config["optim"]
    optimizer = torch.optim.AdamW(param_groups(model, optim["lr"], optim["weight_decay"], optim["ssm_lr"]))
    waveform = torch.randn(case.batch, L, device=device)
    labels = torch.randint(0, model.n_classes, (case.batch,), device=device)
    clip, smoothing = config["trainer"].get("gradient_clip_val"), optim.get("label_smoothing", 0.0)
    # As training runs it: precision "auto" is bf16 autocast on a GPU (the SSM itself stays in float32).
    bf16 = device.type == "cuda" and config["trainer"]["precision"] == "auto"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(waveform), labels, label_smoothing=smoothing)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


def evaluate_run(case, warm_up: bool):
    """`evaluate_model` on the test split of case.data at 16 and 8 kHz → {"clips": clips × rates}."""
    from training.data.speech_commands import SpeechCommands
    from training.evaluation.evaluate import evaluate_model
    from training.serving import predict_logits

    model, meta = load(case)
    model = model.to(case.device)
    if warm_up:  # one small batch at each rate: loads the FFT plans and the resampler's kernels
        return lambda: [predict_logits(model, meta, torch.randn(2, rate), rate) for rate in (16000, 8000)]
    subset = {10: "sc10", 12: "sc12", 35: "sc35"}[len(meta["classes"])]
    dataset = SpeechCommands(case.data, subset, "test", sample_rate=16000)

    def run() -> dict:
        results = evaluate_model(model, meta, dataset, [16000, 8000], batch_size=case.batch)
        return {"clips": sum(result["n_clips"] for result in results.values())}

    return run


def live_run(case, seconds: float):
    """Feed `seconds` of speech-like audio at case.rate through a fresh LiveSession → {"rtf", "engine"}."""
    from app.bundle import LoadedModel
    from app.streaming import LiveSession

    model, meta = load(case)
    bundle = LoadedModel(model, meta, ROOT / (case.model or "random.safetensors"))
    audio = speech_like(seconds, case.rate)
    chunk = round(LIVE_CHUNK_SECONDS * case.rate)

    def run() -> dict:
        session = LiveSession(bundle, case.rate, case.rate, engine=case.engine)
        for part in audio.split(chunk):
            session.feed(part)
        session.finish()
        return {"rtf": session.busy / session.heard, "engine": session.using}

    return run


def speech_like(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """A word every second: 0.5 s of a −60 dBFS noise bed, then 0.5 s of a tone (200 Hz-4 kHz) in noise at
    about −20 dBFS. Live mode's voice gate opens and closes on it as on speech (quiet first: it learns the floor)."""
    g = torch.Generator().manual_seed(seed)
    n = round(seconds * rate)
    t = torch.arange(n) / rate
    bed = 1e-3 * torch.randn(n, generator=g)
    tone = torch.sin(2 * math.pi * (200 + 3800 * torch.rand(1, generator=g)) * t)
    burst = 0.1 * (torch.randn(n, generator=g) * 0.3 + tone) * ((t % 1.0) >= 0.5)
    return (bed + burst).float()


def write_noise_dataset(root: Path, clips_per_class: int, seed: int = 0) -> Path:
    """A Speech Commands layout of generated (not spoken) 1 s clips for timing `training.evaluate`: each SC10
    word, one extra word ("unknown" for SC12) and `_silence_`, every clip listed in testing_list.txt."""
    from training.data.speech_commands import SC10_CLASSES

    rng = np.random.default_rng(seed)
    listed = []
    for word in (*SC10_CLASSES, "bed", "_silence_"):
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_class):
            name = f"{word}/{i:08x}_nohash_0.wav"
            samples = speech_like(1.0, 16000, seed=int(rng.integers(1 << 30))).numpy()
            _write_wav(root / name, samples)
            listed.append(name)
    (root / "testing_list.txt").write_text("\n".join(listed) + "\n")
    (root / "validation_list.txt").write_text("")
    return root


def _write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
