"""Google Speech Commands (v0.01/v0.02, or a generated look-alike): class lists, splits, the Dataset, a CLI.

Layout: `root/<word>/<speaker>_nohash_<n>.wav`, `validation_list.txt`, `testing_list.txt`,
`_background_noise_/`. Items are `(waveform (L,) float32, label, path)` with L = sample_rate (1 s).

    python -m training.data download --root data/speech_commands
    python -m training.data info --root data/sc10-synth
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import ConcatDataset, Dataset

from training.common.audio import DOWNSAMPLE, load_audio, pad_or_trim, prepare
from training.common.cli import USER_ERRORS, report_error
from training.data.clip_index import NATIVE_RATE, SILENCE, describe_data, scan
from training.data.download import OFFICIAL_V1_URL, OFFICIAL_V2_URL, download

__all__ = [
    "OFFICIAL_V1_URL", "OFFICIAL_V2_URL", "SC10_CLASSES", "SC12_CLASSES", "SC35_CLASSES", "SILENCE", "UNKNOWN",
    "Folders", "SpeechCommands", "download", "noise_cuts", "noise_split_seconds", "open_split", "training_seconds",
]  # fmt: skip

log = logging.getLogger(__name__)

# Label order of the ten-word task (the S4 paper's SC10).
SC10_CLASSES = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# All 35 words of v0.02, sorted alphabetically; v0.01 lacks backward, follow, forward, learn, visual.
SC35_CLASSES = tuple(sorted((
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)))  # fmt: skip
UNKNOWN = "_unknown_"
# Keyword spotting (Warden 2018): the ten words, silence (the `_silence_` clips and 1 s cuts of the background
# noise recordings) and unknown (every other word).
SC12_CLASSES = (*SC10_CLASSES, SILENCE, UNKNOWN)
NOISE_FOLDER = "_background_noise_"
CUT_MARK = "#"  # "_background_noise_/white_noise.wav#12": the 13th one-second cut of that recording
SPLITS = {
    "train": "train",
    "val": "validation",
    "validation": "validation",
    "test": "testing",
    "testing": "testing",
}


def _read_list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.exists():
        raise ValueError(f"{root} is not in the Speech Commands layout: {name} is missing")
    # Entries are matched without their suffix, so a copy of the dataset converted to FLAC keeps its splits.
    return {_stem(line.strip()) for line in path.read_text().splitlines() if line.strip()}


def _stem(relative: str) -> str:
    return os.path.splitext(relative)[0]


def training_seconds(seconds: int) -> int:
    """Whole seconds at the start of a noise recording that belong to training: the last tenth (at least one
    second) is testing and the tenth before it validation."""
    return seconds - 2 * max(1, seconds // 10)


def noise_split_seconds(seconds: int) -> dict[str, range]:
    """The whole seconds of a noise recording of `seconds` s that belong to each split ("train", "validation",
    "testing"): the start to training (`training_seconds`), then the validation tenth, then the testing tenth.
    A recording under 3 s gives no split any."""
    if seconds < 3:
        return {"train": range(0), "validation": range(0), "testing": range(0)}
    train = training_seconds(seconds)
    middle = (seconds + train) // 2
    return {"train": range(train), "validation": range(train, middle), "testing": range(middle, seconds)}


def noise_cuts(root: Path) -> dict[str, list[str]]:
    """One-second cuts of every `_background_noise_` recording, for the silence class, by split (see
    `training_seconds`; recordings under 3 s give none).

    → {"train" | "validation" | "testing": ["_background_noise_/<name>.wav#k", ...]}; empty lists without noise.
    """
    cuts: dict[str, list[str]] = {"train": [], "validation": [], "testing": []}
    folder = root / NOISE_FOLDER
    for recording in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
        info = sf.info(str(recording))
        for split, seconds in noise_split_seconds(int(info.frames / info.samplerate)).items():
            cuts[split] += [f"{NOISE_FOLDER}/{recording.name}{CUT_MARK}{k}" for k in seconds]
    return cuts


def _s4_paper_split(items: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """S4 paper protocol: clips of exactly 16000 samples, stratified 70/15/15 with fixed seeds."""
    from sklearn.model_selection import train_test_split

    labels = [label for _, label in items]
    train, rest = train_test_split(items, test_size=0.3, stratify=labels, random_state=0)
    if split == "train":
        return train
    val, test = train_test_split(rest, test_size=0.5, stratify=[label for _, label in rest], random_state=1)
    return val if split == "validation" else test


class SpeechCommands(Dataset):
    """One split of Speech Commands → `(waveform (L,) float32, label, path)`, L = sample_rate (one second).

    protocol "official": validation_list.txt / testing_list.txt, train = the rest.
    protocol "s4-paper" (sc10 only): full-length clips, stratified 70/15/15 (sklearn, random_state 0 then 1).
    downsample "resample" (anti-aliased) or "decimate" (x[::k], the S4 paper's 8 kHz test) for rates < 16 kHz.
    Unreadable clips are left out and listed in `bad_files` as (path, reason).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "sc10",
        split: str = "train",
        sample_rate: int = 16000,
        protocol: str = "official",
        downsample: str = "resample",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Speech Commands folder {self.root} does not exist")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
        if protocol not in ("official", "s4-paper"):
            raise ValueError(f"unknown protocol {protocol!r}; choose 'official' or 's4-paper'")
        if downsample not in DOWNSAMPLE:
            raise ValueError(f"unknown downsample {downsample!r}; choose 'resample' or 'decimate'")
        if downsample == "decimate" and NATIVE_RATE % sample_rate:
            raise ValueError(f"decimate needs a rate dividing {NATIVE_RATE} Hz, got {sample_rate}")
        self.split, self.sample_rate, self.downsample = SPLITS[split], sample_rate, downsample
        self.classes = self._classes(subset)
        if protocol == "s4-paper" and self.classes != SC10_CLASSES:
            raise ValueError("protocol 's4-paper' is defined for subset 'sc10' only")

        items = self._split(self._labelled(scan(self.root), subset, protocol), protocol)
        if subset == "sc12":
            items += [(cut, self.classes.index(SILENCE)) for cut in noise_cuts(self.root)[self.split]]
        self.paths = [str(self.root / relative) for relative, _ in items]
        self.labels = [label for _, label in items]
        self._recordings: dict[str, torch.Tensor] = {}

    def _labelled(self, files: dict[str, int | str], subset: str, protocol: str) -> list[tuple[str, int]]:
        """The index's clips of this dataset's classes → (relative path, label); unreadable ones go to
        `bad_files`, and the s4-paper protocol keeps only full-length clips."""
        label_of = {word: i for i, word in enumerate(self.classes)}
        if subset == "sc12":  # every word folder outside SC10 is "unknown"; `_background_noise_` is never scanned
            label_of.update({r.split("/")[0]: label_of[UNKNOWN] for r in files if r.split("/")[0] not in label_of})
        items, self.bad_files = [], []
        for relative, value in files.items():
            word = relative.split("/")[0]
            if word not in label_of:
                continue
            if isinstance(value, str):
                self.bad_files.append((str(self.root / relative), value))
            elif protocol == "official" or value == NATIVE_RATE:
                items.append((relative, label_of[word]))
        if self.bad_files:
            names = ", ".join(Path(p).name for p, _ in self.bad_files[:10])
            log.warning("%d unreadable clips left out of %s: %s", len(self.bad_files), self.root, names)
        if not items:
            raise ValueError(
                f"{self.root} is not in the Speech Commands layout: no WAV or FLAC files in {self.classes}"
            )
        return items

    def _split(self, items: list[tuple[str, int]], protocol: str) -> list[tuple[str, int]]:
        """The items of this dataset's split: by the folder's lists ("official") or the S4 paper's 70/15/15."""
        if protocol != "official":
            return sorted(_s4_paper_split(items, self.split))
        val, test = _read_list(self.root, "validation_list.txt"), _read_list(self.root, "testing_list.txt")
        if self.split == "train":
            return [it for it in items if _stem(it[0]) not in val and _stem(it[0]) not in test]
        held = val if self.split == "validation" else test
        return [it for it in items if _stem(it[0]) in held]

    def _classes(self, subset: str) -> tuple[str, ...]:
        if subset in ("sc10", "sc12"):
            return SC10_CLASSES if subset == "sc10" else SC12_CLASSES
        if subset != "sc35":
            raise ValueError(f"unknown subset {subset!r}; choose 'sc10', 'sc12' or 'sc35'")
        present = tuple(w for w in SC35_CLASSES if (self.root / w).is_dir())
        if len(present) < len(SC35_CLASSES):
            missing = sorted(set(SC35_CLASSES) - set(present))
            log.warning("%s has %d of the 35 words (v0.01 has 30); missing: %s", self.root, len(present), missing)
        return present

    def __len__(self) -> int:
        return len(self.paths)

    def _cut(self, path: str) -> torch.Tensor:
        """Path "<recording>#k" → its k-th one-second cut at 16 kHz; each recording is read once per process."""
        recording, _, k = path.rpartition(CUT_MARK)
        if recording not in self._recordings:
            self._recordings[recording] = load_audio(recording, NATIVE_RATE)
        return self._recordings[recording][int(k) * NATIVE_RATE : (int(k) + 1) * NATIVE_RATE]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        path = self.paths[index]
        if CUT_MARK in Path(path).name:
            wave = self._cut(path)
        else:
            wave = pad_or_trim(load_audio(path, NATIVE_RATE), NATIVE_RATE)
        wave = prepare(wave, NATIVE_RATE, self.sample_rate, self.downsample)
        return pad_or_trim(wave, self.sample_rate), self.labels[index], path


class Folders(ConcatDataset):
    """One split of several Speech Commands folders, one after another: each folder split by its own lists, all
    labelled alike. Items `(waveform (L,) float32, label, path)`; `classes`, `paths`, `labels`, `split` and
    `sample_rate` as in `SpeechCommands`, `parts` the folders' own datasets."""

    def __init__(self, parts: Sequence[SpeechCommands]) -> None:
        differing = {part.classes for part in parts}
        if len(differing) > 1:
            raise ValueError(
                "the data folders give different class lists: "
                + "; ".join(f"{part.root.name}: {', '.join(part.classes)}" for part in parts)
            )
        super().__init__(parts)
        self.parts = list(parts)
        self.classes, self.split, self.sample_rate = parts[0].classes, parts[0].split, parts[0].sample_rate
        self.paths = [path for part in parts for path in part.paths]
        self.labels = [label for part in parts for label in part.labels]


def open_split(
    roots: Sequence[str | os.PathLike],
    subset: str,
    split: str,
    sample_rate: int = 16000,
    protocol: str = "official",
) -> SpeechCommands | Folders:
    """The `split` of every folder in `roots`: a `SpeechCommands` for one folder, their `Folders` for several."""
    parts = [SpeechCommands(root, subset, split, sample_rate, protocol) for root in roots]
    if not parts:
        raise ValueError("no data folder given")
    return parts[0] if len(parts) == 1 else Folders(parts)


def info(root: str | os.PathLike, subset: str = "sc10", protocol: str = "official") -> dict[str, dict[str, int]]:
    """Clip counts per split and class: {split: {word: count}}."""
    counts = {}
    for split in ("train", "validation", "testing"):
        dataset = SpeechCommands(root, subset, split, protocol=protocol)
        per_class = Counter(dataset.labels)
        counts[split] = {word: per_class[i] for i, word in enumerate(dataset.classes)}
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description="Speech Commands data tools")
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="download and extract the official archive")
    get.add_argument("--root", type=Path, required=True)
    get.add_argument("--url", default=OFFICIAL_V2_URL, help=f"default {OFFICIAL_V2_URL}; v0.01: {OFFICIAL_V1_URL}")
    get.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    get.add_argument("--size", type=int, default=None, help="expected size of the archive in bytes")
    show = commands.add_parser("info", help="counts per split and class")
    show.add_argument("--root", type=Path, required=True)
    show.add_argument("--subset", default="sc10", choices=("sc10", "sc12", "sc35"))
    show.add_argument("--protocol", default="official", choices=("official", "s4-paper"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "download":
            print(download(args.root, args.url, expected_size=args.size, sha256=args.sha256))
        else:
            counts = info(args.root, args.subset, args.protocol)
            if describe_data(args.root)["synthetic"]:
                print(f"{args.root}: SYNTHETIC data (see its manifest.json)")
            for split, per_class in counts.items():
                print(
                    f"{split:10s} {sum(per_class.values()):6d}  " + " ".join(f"{w}={n}" for w, n in per_class.items())
                )
    except USER_ERRORS as error:
        return report_error(error)
    return 0
