"""An offline Speech Commands look-alike generated with text-to-speech (flite, festival, espeak-ng + sox).

Layout is the real dataset's: `<word>/<voicehash>_nohash_<n>.wav` (1 s, 16 kHz mono 16-bit),
`validation_list.txt`, `testing_list.txt`, `_background_noise_/`, plus `README` and `manifest.json`
that say the data is SYNTHETIC. A "voice" (engine, voice, speed/pitch settings) plays the part of a
speaker: the splits are disjoint by voice, as the real ones are by speaker.

    python -m training.synth --out data/sc10-synth --words sc10 --clips-per-word 300 --seed 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from training.common.cli import USER_ERRORS, report_error
from training.common.progress import progress_bar
from training.data.effects import CLIP, NOISE_KINDS, PARAMS, make_noise, render_clip
from training.data.speech_commands import SC10_CLASSES, SC35_CLASSES
from training.data.tts import (
    ENGINES,
    RATE,
    SynthError,
    Voice,
    check_engines,
    engine_versions,
    load_speech,
    sample_voice,
    tts_files,
)

# espeak-ng gets the largest share: its accents and variants transfer best to real voices.
ENGINE_WEIGHTS = {"espeak-ng": 0.5, "flite": 0.25, "festival": 0.25}
# What assign_splits aims at; recorded in the manifest with the clip parameters.
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "testing": 0.1}

# One voice's work: (voice, words, repetitions of each word, output folder, seed of its generator).
VoiceTask = tuple[Voice, tuple[str, ...], int, Path, list[int]]

_NOISES: list[np.ndarray] = []


def _init_worker(noises: list[np.ndarray]) -> None:
    global _NOISES
    _NOISES = noises


def _voice_task(task: VoiceTask) -> list[str]:
    """Render `reps` clips of every word for one voice; returns the written paths relative to out."""
    voice, words, reps, out, seed = task
    rng = np.random.default_rng(seed)
    written = []
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        for word, path in tts_files(voice, words, Path(tmp)).items():
            speech = load_speech(path)
            if len(speech) < RATE // 20:
                raise SynthError(f"{voice.engine} voice {voice.name} produced no speech for {word!r}")
            for n in range(reps):
                relative = f"{word}/{voice.hash}_nohash_{n}.wav"
                sf.write(out / relative, render_clip(speech, voice, _NOISES, rng), RATE, subtype="PCM_16")
                written.append(relative)
    return written


def _engine_counts(count: int, engines: Sequence[str]) -> dict[str, int]:
    """Voices per engine in proportion to ENGINE_WEIGHTS, at least one each when there is room."""
    weights = np.array([ENGINE_WEIGHTS[e] for e in engines])
    floor = 1 if count >= len(engines) else 0
    shares = floor + weights / weights.sum() * (count - floor * len(engines))
    counts = np.floor(shares).astype(int)
    for i in np.argsort(counts - shares)[: count - counts.sum()]:  # largest remainders get the rest
        counts[i] += 1
    return dict(zip(engines, counts.tolist(), strict=True))


def _sample_voices(count: int, engines: Sequence[str], rng: np.random.Generator) -> list[Voice]:
    order = [e for e, n in _engine_counts(count, engines).items() for _ in range(n)]
    voices: dict[str, Voice] = {}
    for engine in rng.permutation(order):
        voice = sample_voice(rng, str(engine))
        while voice.hash in voices:  # the same settings twice would merge two speakers: draw again
            voice = sample_voice(rng, str(engine))
        voices[voice.hash] = voice
    return list(voices.values())


def assign_splits(voices: Sequence[Voice]) -> dict[str, str]:
    """Voice hash → "train" | "validation" | "testing", ~80/10/10, spread evenly over the engines."""
    ordered = sorted(voices, key=lambda v: (v.engine, v.hash))
    held = max(1, round(0.1 * len(ordered))) if len(ordered) >= 3 else 0
    step = len(ordered) / max(1, 2 * held)
    picked = [int(k * step + step / 2) for k in range(2 * held)]
    splits = {v.hash: "train" for v in ordered}
    for k, index in enumerate(picked):
        splits[ordered[index].hash] = "validation" if k % 2 == 0 else "testing"
    return splits


def _plan(clips_per_word: int, reps_per_voice: int) -> list[int]:
    """Repetitions of each word per voice, summing to clips_per_word; small sets use one clip per voice."""
    reps = reps_per_voice if clips_per_word >= 10 * reps_per_voice else 1
    plan = [reps] * (clips_per_word // reps)
    if clips_per_word % reps:
        plan.append(clips_per_word % reps)
    return plan


def resolve_words(words: str | Sequence[str]) -> tuple[str, ...]:
    """ "sc10" | "sc35" | comma-separated words | a sequence of words → tuple of words."""
    if isinstance(words, str):
        named = {"sc10": SC10_CLASSES, "sc35": SC35_CLASSES}
        return tuple(named.get(words.lower(), [w.strip() for w in words.split(",") if w.strip()]))
    return tuple(words)


def _check_request(out: Path, clips_per_word: int, engines: Sequence[str]) -> None:
    """Fail before writing anything: a missing program, no clips asked for, or files left in `out`."""
    check_engines(engines)
    if clips_per_word < 1:
        raise ValueError(f"clips_per_word must be >= 1, got {clips_per_word}")
    if out.exists() and any(out.iterdir()):
        # Clips left from another run would silently join the training split.
        raise SynthError(f"{out} exists and is not empty: delete it or choose another --out")


def _write_noises(out: Path, seconds: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Generate one noise of each kind into `out`/_background_noise_; returns kind → noise."""
    generated = {kind: make_noise(kind, seconds, rng) for kind in NOISE_KINDS}
    (out / "_background_noise_").mkdir(parents=True, exist_ok=True)
    for kind, noise in generated.items():
        sf.write(out / "_background_noise_" / f"{kind}_noise.wav", noise, RATE, subtype="PCM_16")
    return generated


def _load_noises(noise_dir: Path | None, generated: dict[str, np.ndarray]) -> list[np.ndarray]:
    from training.common.audio import load_audio

    noises = list(generated.values())
    if noise_dir is not None:
        noises += [load_audio(p).numpy() for p in sorted(Path(noise_dir).glob("*.wav"))]
    return [x for x in noises if len(x) >= CLIP]


def _run_pool(tasks: list[VoiceTask], noises: list[np.ndarray], workers: int | None, progress: bool) -> list[str]:
    """Run every voice task, in `workers` processes (default: CPU count); returns the written paths."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    bar = progress_bar(len(tasks), "voices", "voice", enabled=progress)  # plain lines in a log file
    written: list[str] = []
    if workers == 1:
        _init_worker(noises)
        for task in tasks:
            written += _voice_task(task)
            bar.update()
    else:
        # fork keeps the start cheap; each task seeds its own generator, so order does not matter.
        with multiprocessing.get_context("fork").Pool(workers, _init_worker, (noises,)) as pool:
            for paths in pool.imap(_voice_task, tasks):
                written += paths
                bar.update()
    bar.close()
    return written


def _write_lists(
    out: Path, written: list[str], splits: dict[str, str], words: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Write validation_list.txt and testing_list.txt; returns clips per split and word."""
    lists = {"validation": [], "testing": []}
    counts = {split: dict.fromkeys(words, 0) for split in ("train", "validation", "testing")}
    for relative in sorted(written):
        split = splits[Path(relative).name.split("_nohash_")[0]]
        counts[split][relative.split("/")[0]] += 1
        if split in lists:
            lists[split].append(relative)
    for split, paths in lists.items():
        (out / f"{split}_list.txt").write_text("".join(p + "\n" for p in paths))
    return counts


def generate(
    out: Path,
    words: str | Sequence[str] = SC10_CLASSES,
    clips_per_word: int = 300,
    seed: int = 0,
    workers: int | None = None,
    engines: Sequence[str] | None = None,
    progress: bool = True,
    *,
    noise_dir: Path | None = None,
    noise_seconds: float = 45.0,
    reps_per_voice: int = 2,
) -> dict:
    """Write the synthetic dataset into `out` and return its manifest (also saved as manifest.json).

    Each voice says every word `reps_per_voice` times (differently each time); the same seed gives
    byte-identical files whatever the number of workers.
    """
    out = Path(out)
    words = resolve_words(words)
    engines = tuple(engines or ENGINES)
    _check_request(out, clips_per_word, engines)
    plan = _plan(clips_per_word, reps_per_voice)
    voices = _sample_voices(len(plan), engines, np.random.default_rng([seed, 0]))
    splits = assign_splits(voices)
    generated = _write_noises(out, noise_seconds, np.random.default_rng([seed, 1]))
    for word in words:
        (out / word).mkdir(exist_ok=True)
    tasks = [(v, words, reps, out, [seed, 2, i]) for i, (v, reps) in enumerate(zip(voices, plan, strict=True))]
    written = _run_pool(tasks, _load_noises(noise_dir, generated), workers, progress)
    counts = _write_lists(out, written, splits, words)
    manifest = {
        "synthetic": True,
        "description": "SYNTHETIC Speech Commands look-alike made by training.synth from "
        "text-to-speech voices; not real recordings.",
        "generator": "python -m training.synth",
        "seed": seed,
        "words": list(words),
        "clips_per_word": clips_per_word,
        "reps_per_voice": max(plan),
        "engines": engine_versions(engines),
        "noise_dir": str(noise_dir) if noise_dir else None,
        "background_noise": [f"{kind}_noise.wav" for kind in NOISE_KINDS],
        "parameters": {**PARAMS, "split_fractions": SPLIT_FRACTIONS},
        "counts": counts,
        "voices": [{"hash": v.hash, "split": splits[v.hash], **asdict(v)} for v in voices],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "README").write_text(_readme(manifest))
    return manifest


def _readme(manifest: dict) -> str:
    totals = {split: sum(c.values()) for split, c in manifest["counts"].items()}
    return (
        "SYNTHETIC SPEECH COMMANDS (generated, not real recordings)\n\n"
        f"Made by `python -m training.synth` with seed {manifest['seed']}: {len(manifest['voices'])} "
        f"text-to-speech voices ({', '.join(manifest['engines'])}) each saying {len(manifest['words'])} "
        "words, varied in speed, pitch, duration, level, offset, band limit, room reverberation and\n"
        "background noise.\n"
        f"Clips per split: {totals}.\nSplits are disjoint by voice (the voice hash starts each file name).\n"
        "Layout as Google's Speech Commands: <word>/<voicehash>_nohash_<n>.wav (1 s, 16 kHz, mono, 16-bit),\n"
        "validation_list.txt, testing_list.txt, _background_noise_/ (generated noise).\n"
        "Details: manifest.json.\n"
        "Accuracy measured on this data says nothing about real voices: report which data a result is from.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--words", default="sc10", help="sc10, sc35, or comma-separated words (default sc10)")
    parser.add_argument("--clips-per-word", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {ENGINES}")
    parser.add_argument("--noise-dir", type=Path, default=None, help="extra real noise WAVs mixed into clips")
    parser.add_argument("--noise-seconds", type=float, default=45.0, help="length of each generated noise file")
    args = parser.parse_args(argv)
    try:
        manifest = generate(
            args.out, args.words, args.clips_per_word, args.seed, args.workers,
            [e.strip() for e in args.engines.split(",") if e.strip()],
            noise_dir=args.noise_dir, noise_seconds=args.noise_seconds,
        )  # fmt: skip
    except (SynthError, *USER_ERRORS) as error:
        return report_error(error)
    print(json.dumps(manifest["counts"]))
    return 0
