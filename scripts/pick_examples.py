"""Copy the demo's example clips from a real Speech Commands folder's test speakers into app/examples.

    python scripts/pick_examples.py --data ../shared/data/speech_commands_real

One clip per command, a second "go" resampled to 8 kHz, one other word ("not a command") and one silence clip,
each the first of its class in testing_list.txt (sorted: no choosing by what the model answers), as 16-bit WAV.
Writes app/examples/README.md with where each clip came from and its licence (CC BY 4.0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from training.data import SC10_CLASSES
from training.serving import load_audio, resample

OUT = Path(__file__).resolve().parents[1] / "app" / "examples"
OTHER_WORD = "bed"
ATTRIBUTION = """# Example clips

Real recordings from Google's Speech Commands dataset v0.02 (Warden, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition", arXiv:1804.03209), licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/), by speakers of the test list of `speech_commands_real`, whom the
bundled model never heard. Each is the first clip of its class in that list (`scripts/pick_examples.py`);
`go_8k.wav` is the second "go", resampled to 8 kHz. Converted to 16-bit WAV; otherwise unchanged.

| file | source clip |
| --- | --- |
"""


def pick(data: Path) -> dict[str, tuple[str, int]]:
    """Example name → (source path relative to `data`, output rate)."""
    listed = sorted((data / "testing_list.txt").read_text().split())
    first = lambda word, skip=0: [p for p in listed if p.startswith(f"{word}/")][skip]  # noqa: E731
    chosen = {word: (first(word), 16000) for word in SC10_CLASSES}
    chosen["go_8k"] = (first("go", 1), 8000)
    chosen["not_a_command"] = (first(OTHER_WORD), 16000)
    chosen["silence"] = (first("_silence_"), 16000)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a real Speech Commands folder with testing_list.txt")
    args = parser.parse_args()
    rows = []
    for name, (source, rate) in pick(args.data).items():
        wave = load_audio(args.data / source)
        if rate != 16000:
            wave = resample(wave, 16000, rate)
        sf.write(OUT / f"{name}.wav", wave.numpy(), rate, subtype="PCM_16")
        rows.append(f"| `{name}.wav` | `{source}`{' (8 kHz)' if rate != 16000 else ''} |")
    (OUT / "README.md").write_text(ATTRIBUTION + "\n".join(rows) + "\n")
    print(f"wrote {len(rows)} clips and README.md to {OUT}")


if __name__ == "__main__":
    main()
