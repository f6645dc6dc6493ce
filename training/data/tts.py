"""Text-to-speech for training.synth: the engines (flite, festival, espeak-ng; sox) and the voices drawn from them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RATE = 16000
ENGINES = ("flite", "festival", "espeak-ng")
# Debian packages providing each program; named in the error when one is missing.
PACKAGES = {
    "flite": "flite",
    "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
}

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
# A voice's own pitch shift; sox applies it with the clip effects, the engines never see it.
VOICE_SEMITONES = (-3.0, 3.0)


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
    semitones = round(float(rng.uniform(*VOICE_SEMITONES)), 1)
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


def run_program(command: list[str], stdin: bytes | None = None) -> bytes:
    """Run an engine or sox; its stdout, or SynthError with its stderr when it fails."""
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise SynthError(f"{' '.join(command)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def tts_files(voice: Voice, words: Sequence[str], folder: Path) -> dict[str, Path]:
    """Speak each word with `voice` into a WAV file in `folder` (one festival process for all words)."""
    paths = {word: folder / f"{word}.wav" for word in words}
    if voice.engine == "espeak-ng":
        for word, path in paths.items():
            s = voice.settings
            run_program(
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
            run_program(["flite", "-voice", voice.name, *sets, "-t", word, "-o", str(path)])
    else:
        lines = [f"({voice.name})", f"(Parameter.set 'Duration_Stretch {voice.settings['duration_stretch']})"]
        lines += [f'(utt.save.wave (utt.synth (Utterance Text "{w}")) "{p}" \'riff)' for w, p in paths.items()]
        script = folder / "say.scm"
        script.write_text("\n".join(lines) + "\n")
        run_program(["festival", "-b", str(script)])
    return paths


def load_speech(path: Path) -> np.ndarray:
    """TTS output → 16 kHz mono float32 (L,), peak -3 dBFS, trimmed where < -45 dB re. the loudest 10 ms."""
    raw = run_program(["sox", str(path), "-t", "f32", "-r", str(RATE), "-c", "1", "-", "norm", "-3"])
    wave = np.frombuffer(raw, dtype=np.float32)
    frame = RATE // 100
    energy = np.convolve(np.square(wave, dtype=np.float64), np.ones(frame) / frame, mode="same")
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-45 / 10))
    return wave[loud[0] : loud[-1] + 1] if len(loud) else wave[:0]


def engine_versions(engines: Sequence[str]) -> dict[str, str]:
    """Program → its version line, for sox and each engine."""
    versions = {}
    for program in ("sox", *engines):
        result = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
        lines = (result.stdout or result.stderr).strip().splitlines()  # flite exits 1 after --version
        named = [line for line in lines if program.split("-")[0] in line.lower()]
        versions[program] = (named or lines or ["?"])[0].strip()
    return versions
