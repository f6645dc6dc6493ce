"""An offline Speech Commands look-alike generated with text-to-speech (flite, festival, espeak-ng + sox).

Layout is the real dataset's: `<word>/<voicehash>_nohash_<n>.wav` (1 s, 16 kHz mono 16-bit),
`validation_list.txt`, `testing_list.txt`, `_background_noise_/`, plus `README` and `manifest.json`
that say the data is SYNTHETIC. A "voice" (engine, voice, speed/pitch settings) plays the part of a
speaker: the splits are disjoint by voice, as the real ones are by speaker.

    python -m training.synth --out data/sc10-synth --words sc10 --clips-per-word 300 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from training.data import SC10_CLASSES, SC35_CLASSES
from training.progress import progress_bar

RATE = 16000
CLIP = RATE  # samples in a one-second clip
ENGINES = ("flite", "festival", "espeak-ng")
# Debian packages providing each program; named in the error when one is missing.
PACKAGES = {
    "flite": "flite",
    "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
}
# espeak-ng gets the largest share: its accents and variants transfer best to real voices.
ENGINE_WEIGHTS = {"espeak-ng": 0.5, "flite": 0.25, "festival": 0.25}

FLITE_VOICES = {"kal16": "m", "awb": "m", "rms": "m", "slt": "f", "kal": "m"}
FESTIVAL_VOICES = {
    "voice_kal_diphone": ("english/kal_diphone", "m"),
    "voice_ked_diphone": ("english/ked_diphone", "m"),
    "voice_cmu_us_slt_arctic_hts": ("us/cmu_us_slt_arctic_hts", "f"),
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
ESPEAK_ACCENTS = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
)  # fmt: skip
ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 8)), *(f"f{i}" for i in range(1, 6)),
    "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "Andy", "Annie", "aunty", "belinda", "benjamin",
    "david", "ed", "edward", "grandma", "grandpa", "john", "linda", "max", "Michael", "paul", "quincy",
    "rob", "robert", "steph", "travis", "victor", "whisperf", "norbert", "shelby", "Lee",
)  # fmt: skip
FEMALE_VARIANTS = {"f1", "f2", "f3", "f4", "f5", "Annie", "aunty", "belinda", "grandma", "linda", "steph",
                   "whisperf", "shelby"}  # fmt: skip

NOISE_KINDS = ("white", "pink", "brown", "hum", "babble", "fan")
# Per-clip variation; recorded in the manifest.
PARAMS = {
    "word_seconds": (0.35, 0.85),  # trimmed length; real SC words measure ~0.3-0.75 s
    "voice_semitones": (-3.0, 3.0),
    "clip_cents_jitter": 60,
    "speed": (0.92, 1.08),
    "reverb_prob": 0.5,
    "reverb_room_scale": (10, 100),
    "filter_prob": 0.3,
    "level_dbfs": (-32.0, -12.0),
    "noise_prob": 0.75,
    "snr_db": (5.0, 35.0),
    "floor_dbfs": (-75.0, -55.0),
    "split_fractions": {"train": 0.8, "validation": 0.1, "testing": 0.1},
}


class SynthError(RuntimeError):
    """A text-to-speech program or voice is missing or failed."""


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: one engine voice with fixed settings and a fixed pitch shift."""

    engine: str
    name: str
    settings: dict = field(default_factory=dict)
    semitones: float = 0.0

    @property
    def hash(self) -> str:
        """8 hex digits, like the speaker hashes of the real dataset."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]


def check_engines(engines: Sequence[str]) -> None:
    """Raise SynthError naming the Debian package for every missing program (sox is always needed)."""
    for program in ("sox", *engines):
        if program not in PACKAGES:
            raise SynthError(f"unknown engine {program!r}; choose from {', '.join(ENGINES)}")
        if shutil.which(program) is None:
            raise SynthError(f"{program} not found: apt-get install {PACKAGES[program]}")
    if "festival" in engines and not _festival_voices():
        raise SynthError(f"festival has no voices: apt-get install {PACKAGES['festival']}")


def _festival_voices() -> list[str]:
    return [name for name, (folder, _) in FESTIVAL_VOICES.items() if (FESTIVAL_VOICE_DIR / folder).is_dir()]


def sample_voice(rng: np.random.Generator, engine: str) -> Voice:
    """Draw one voice of `engine` with random speed/pitch settings."""
    semitones = round(float(rng.uniform(*PARAMS["voice_semitones"])), 1)
    if engine == "espeak-ng":
        accent = str(rng.choice(ESPEAK_ACCENTS))
        variant = str(rng.choice(ESPEAK_VARIANTS))
        base = 60 if variant in FEMALE_VARIANTS else 40
        settings = {
            "speed": int(rng.integers(110, 200)),
            "pitch": int(np.clip(base + rng.integers(-25, 26), 0, 99)),
        }
        return Voice(engine, f"{accent}+{variant}", settings, semitones)
    if engine == "flite":
        name = str(rng.choice(list(FLITE_VOICES)))
        f0 = rng.uniform(150, 240) if FLITE_VOICES[name] == "f" else rng.uniform(80, 150)
        settings = {"duration_stretch": round(float(rng.uniform(0.8, 1.6)), 2), "int_f0_target_mean": int(f0)}
        return Voice(engine, name, settings, semitones)
    if engine == "festival":
        name = str(rng.choice(_festival_voices()))
        return Voice(engine, name, {"duration_stretch": round(float(rng.uniform(0.8, 1.5)), 2)}, semitones)
    raise SynthError(f"unknown engine {engine!r}")


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise SynthError(f"{' '.join(command)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _tts_files(voice: Voice, words: Sequence[str], folder: Path) -> dict[str, Path]:
    """Speak each word with `voice` into a WAV file in `folder` (one festival process for all words)."""
    paths = {word: folder / f"{word}.wav" for word in words}
    if voice.engine == "espeak-ng":
        for word, path in paths.items():
            s = voice.settings
            _run(
                [
                    "espeak-ng",
                    "-v",
                    voice.name,
                    "-s",
                    str(s["speed"]),
                    "-p",
                    str(s["pitch"]),
                    "-w",
                    str(path),
                    word,
                ]
            )
    elif voice.engine == "flite":
        for word, path in paths.items():
            sets = [arg for key, value in voice.settings.items() for arg in ("--setf", f"{key}={value}")]
            _run(["flite", "-voice", voice.name, *sets, "-t", word, "-o", str(path)])
    else:
        lines = [f"({voice.name})", f"(Parameter.set 'Duration_Stretch {voice.settings['duration_stretch']})"]
        lines += [f'(utt.save.wave (utt.synth (Utterance Text "{w}")) "{p}" \'riff)' for w, p in paths.items()]
        script = folder / "say.scm"
        script.write_text("\n".join(lines) + "\n")
        _run(["festival", "-b", str(script)])
    return paths


def _speech(path: Path) -> np.ndarray:
    """TTS output → 16 kHz mono float32 (L,), peak -3 dBFS, trimmed where < -45 dB re. the loudest 10 ms."""
    raw = _run(["sox", str(path), "-t", "f32", "-r", str(RATE), "-c", "1", "-", "norm", "-3"])
    wave = np.frombuffer(raw, dtype=np.float32)
    frame = RATE // 100
    energy = np.convolve(np.square(wave, dtype=np.float64), np.ones(frame) / frame, mode="same")
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-45 / 10))
    return wave[loud[0] : loud[-1] + 1] if len(loud) else wave[:0]


def _effects(speech: np.ndarray, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """One rendition: pitch, tempo to a 0.35-0.85 s word, optional filter and room reverb, speed (last)."""
    speed = float(rng.uniform(*PARAMS["speed"]))
    target = float(rng.uniform(*PARAMS["word_seconds"]))
    tempo = float(np.clip(len(speech) / RATE / (target * speed), 0.35, 2.5))
    cents = int(voice.semitones * 100 + rng.integers(-PARAMS["clip_cents_jitter"], PARAMS["clip_cents_jitter"] + 1))
    chain = []
    if rng.random() < PARAMS["filter_prob"]:
        # Cheap microphones and phones: a band limit, first while the rate is 16 kHz (pitch changes it).
        if rng.random() < 0.5:
            chain += ["highpass", str(int(rng.integers(100, 400)))]
        else:
            chain += ["lowpass", str(int(rng.integers(2500, 7000)))]
    chain += ["pitch", str(cents), "tempo", "-s", f"{tempo:.3f}"]
    if rng.random() < PARAMS["reverb_prob"]:
        room = int(rng.integers(*PARAMS["reverb_room_scale"]))
        chain += ["reverb", str(int(rng.integers(20, 90))), "50", str(room), "100",
                  str(int(rng.integers(0, 30))), str(int(rng.integers(-8, 1)))]  # fmt: skip
    chain += ["speed", f"{speed:.3f}", "rate", str(RATE), "channels", "1"]
    fmt = ["-t", "f32", "-r", str(RATE), "-c", "1"]
    raw = _run(["sox", "-R", *fmt, "-", *fmt, "-", *chain], stdin=speech.astype(np.float32).tobytes())
    return np.frombuffer(raw, dtype=np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def render_clip(speech: np.ndarray, voice: Voice, noises: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Trimmed speech (L,) → one-second clip (16000,) float32: effects, random offset, level, noise."""
    word = _effects(speech, voice, rng)[:CLIP]
    word = word * (10 ** (rng.uniform(*PARAMS["level_dbfs"]) / 20) / _rms(word))
    clip = np.zeros(CLIP, dtype=np.float64)
    offset = int(rng.integers(0, CLIP - len(word) + 1))
    clip[offset : offset + len(word)] = word
    if noises and rng.random() < PARAMS["noise_prob"]:
        noise = noises[int(rng.integers(len(noises)))]
        start = int(rng.integers(0, len(noise) - CLIP + 1))
        segment = noise[start : start + CLIP]
        snr = rng.uniform(*PARAMS["snr_db"])
        clip += segment * (_rms(word) / _rms(segment) / 10 ** (snr / 20))
    floor = 10 ** (rng.uniform(*PARAMS["floor_dbfs"]) / 20)
    clip += rng.standard_normal(CLIP) * floor  # real recordings are never digitally silent
    peak = np.abs(clip).max()
    if peak > 0.99:
        clip *= 0.99 / peak
    return clip.astype(np.float32)


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A background-noise recording (L,) float32 at 16 kHz, peak 0.5."""
    n = int(seconds * RATE)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    white = rng.standard_normal(n)

    def shaped(gain: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.fft.rfft(white) * gain, n)

    t = np.arange(n) / RATE
    if kind == "white":
        x = white
    elif kind == "pink":
        x = shaped(1 / np.sqrt(np.maximum(freqs, 20)))
    elif kind == "brown":
        x = shaped(1 / np.maximum(freqs, 20))
    elif kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        x = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        x = x + 0.05 * white
    elif kind == "babble":
        # Several "talkers": speech-band noise switched on and off at syllable rate (3-6 Hz).
        x = np.zeros(n)
        for _ in range(6):
            formant = rng.uniform(300, 2500)
            band = np.exp(-0.5 * ((freqs - formant) / (formant * 0.4)) ** 2)
            talker = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * band, n)
            envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, None)
            x += talker * envelope
    elif kind == "fan":
        x = shaped(1 / np.maximum(freqs, 60) ** 0.8) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
        x = x + 0.3 * np.sin(2 * np.pi * rng.uniform(90, 200) * t) * np.std(x)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS}")
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _load_noises(noise_dir: Path | None, generated: dict[str, np.ndarray]) -> list[np.ndarray]:
    from training.audio import load_audio

    noises = list(generated.values())
    if noise_dir is not None:
        noises += [load_audio(p).numpy() for p in sorted(Path(noise_dir).glob("*.wav"))]
    return [x for x in noises if len(x) >= CLIP]


_NOISES: list[np.ndarray] = []


def _init_worker(noises: list[np.ndarray]) -> None:
    global _NOISES
    _NOISES = noises


def _voice_task(task: tuple[Voice, tuple[str, ...], int, Path, list[int]]) -> list[str]:
    """Render `reps` clips of every word for one voice; returns the written paths relative to out."""
    voice, words, reps, out, seed = task
    rng = np.random.default_rng(seed)
    written = []
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        for word, path in _tts_files(voice, words, Path(tmp)).items():
            speech = _speech(path)
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


def _engine_versions(engines: Sequence[str]) -> dict[str, str]:
    versions = {}
    for program in ("sox", *engines):
        result = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
        lines = (result.stdout or result.stderr).strip().splitlines()  # flite exits 1 after --version
        named = [line for line in lines if program.split("-")[0] in line.lower()]
        versions[program] = (named or lines or ["?"])[0].strip()
    return versions


def resolve_words(words: str | Sequence[str]) -> tuple[str, ...]:
    """ "sc10" | "sc35" | comma-separated words | a sequence of words → tuple of words."""
    if isinstance(words, str):
        named = {"sc10": SC10_CLASSES, "sc35": SC35_CLASSES}
        return tuple(named.get(words.lower(), [w.strip() for w in words.split(",") if w.strip()]))
    return tuple(words)


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
    check_engines(engines)
    if clips_per_word < 1:
        raise ValueError(f"clips_per_word must be >= 1, got {clips_per_word}")
    if out.exists() and any(out.iterdir()):
        # Clips left from another run would silently join the training split.
        raise SynthError(f"{out} exists and is not empty: delete it or choose another --out")
    plan = _plan(clips_per_word, reps_per_voice)
    voices = _sample_voices(len(plan), engines, np.random.default_rng([seed, 0]))
    splits = assign_splits(voices)

    noise_rng = np.random.default_rng([seed, 1])
    generated = {kind: make_noise(kind, noise_seconds, noise_rng) for kind in NOISE_KINDS}
    (out / "_background_noise_").mkdir(parents=True, exist_ok=True)
    for kind, noise in generated.items():
        sf.write(out / "_background_noise_" / f"{kind}_noise.wav", noise, RATE, subtype="PCM_16")
    for word in words:
        (out / word).mkdir(exist_ok=True)

    tasks = [(v, words, reps, out, [seed, 2, i]) for i, (v, reps) in enumerate(zip(voices, plan, strict=True))]
    noises = _load_noises(noise_dir, generated)
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

    lists = {"validation": [], "testing": []}
    counts = {split: dict.fromkeys(words, 0) for split in ("train", "validation", "testing")}
    for relative in sorted(written):
        split = splits[Path(relative).name.split("_nohash_")[0]]
        counts[split][relative.split("/")[0]] += 1
        if split in lists:
            lists[split].append(relative)
    for split, paths in lists.items():
        (out / f"{split}_list.txt").write_text("".join(p + "\n" for p in paths))

    manifest = {
        "synthetic": True,
        "description": "SYNTHETIC Speech Commands look-alike made by training.synth from "
        "text-to-speech voices; not real recordings.",
        "generator": "python -m training.synth",
        "seed": seed,
        "words": list(words),
        "clips_per_word": clips_per_word,
        "reps_per_voice": max(plan),
        "engines": _engine_versions(engines),
        "noise_dir": str(noise_dir) if noise_dir else None,
        "background_noise": [f"{kind}_noise.wav" for kind in NOISE_KINDS],
        "parameters": PARAMS,
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
    except SynthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(manifest["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
