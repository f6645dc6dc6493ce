"""Google Speech Commands (v0.01/v0.02, or a generated look-alike): dataset, augmentation, data module.

Layout: `root/<word>/<speaker>_nohash_<n>.wav`, `validation_list.txt`, `testing_list.txt`,
`_background_noise_/`. Items are `(waveform (L,) float32, label, path)` with L = sample_rate (1 s).

    python -m training.data download --root data/speech_commands
    python -m training.data info --root data/sc10-synth
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from training.audio import AudioError, decimate, load_audio, pad_or_trim, resample
from training.download import OFFICIAL_V1_URL, OFFICIAL_V2_URL, download

__all__ = [
    "OFFICIAL_V1_URL", "OFFICIAL_V2_URL", "SC10_CLASSES", "SC12_CLASSES", "SC35_CLASSES", "Augment", "SpeechCommands",
    "SpeechCommandsDataModule", "download",
]  # fmt: skip

log = logging.getLogger(__name__)

NATIVE_RATE = 16000
# Label order of the ten-word task (the S4 paper's SC10).
SC10_CLASSES = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# All 35 words of v0.02, sorted alphabetically; v0.01 lacks backward, follow, forward, learn, visual.
SC35_CLASSES = tuple(sorted((
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)))  # fmt: skip
SILENCE, UNKNOWN = "_silence_", "_unknown_"
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
INDEX_FILE = ".s4_index.json"
INDEX_VERSION = 3
AUDIO_SUFFIXES = (".wav", ".flac")


def _signature(root: Path, folders: Sequence[Path]) -> str:
    """Cheap fingerprint of the layout: folder mtimes change whenever a file is added or removed.

    The root's own mtime is left out: writing the index there changes it.
    """
    parts = [f"{p.name}:{p.stat().st_mtime_ns}" for p in folders]
    for name in ("validation_list.txt", "testing_list.txt"):
        if (root / name).exists():
            parts.append(f"{name}:{(root / name).stat().st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _index_path(root: Path) -> Path:
    if os.access(root, os.W_OK):
        return root / INDEX_FILE
    # Read-only dataset: keep the index in the user's cache, keyed on the folder's path.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s4-speech"
    return cache / f"index-{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def scan(root: Path) -> dict[str, int | str]:
    """Every `<word>/*.wav` or `*.flac` under root → its length in samples at 16 kHz, or the reason it is unreadable.

    Cached beside the data (or in ~/.cache/s4-speech) and reused while the folders are unchanged.
    """
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and (p.name == SILENCE or not p.name.startswith(("_", ".")))
    )
    signature = _signature(root, folders)
    index_path = _index_path(root)
    if index_path.exists():
        try:
            cached = json.loads(index_path.read_text())
            if cached.get("version") == INDEX_VERSION and cached.get("signature") == signature:
                return cached["files"]
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    files: dict[str, int | str] = {}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            try:
                info = sf.info(str(path))
                if info.frames == 0:
                    raise AudioError("zero-length audio")
                files[f"{folder.name}/{path.name}"] = round(info.frames * NATIVE_RATE / info.samplerate)
            except (AudioError, sf.LibsndfileError, RuntimeError) as error:
                files[f"{folder.name}/{path.name}"] = f"unreadable: {error}"
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        index_path.write_text(json.dumps({"version": INDEX_VERSION, "signature": signature, "files": files}))
    except OSError as error:
        log.warning("could not write the index cache %s: %s", index_path, error)
    return files


def _read_list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.exists():
        raise ValueError(f"{root} is not in the Speech Commands layout: {name} is missing")
    # Entries are matched without their suffix, so a copy of the dataset converted to FLAC keeps its splits.
    return {_stem(line.strip()) for line in path.read_text().splitlines() if line.strip()}


def _stem(relative: str) -> str:
    return os.path.splitext(relative)[0]


def _training_seconds(seconds: int) -> int:
    """Whole seconds at the start of a noise recording that belong to training: the last tenth (at least one
    second) is testing and the tenth before it validation."""
    return seconds - 2 * max(1, seconds // 10)


def noise_cuts(root: Path) -> dict[str, list[str]]:
    """One-second cuts of every `_background_noise_` recording, for the silence class, by split (see
    `_training_seconds`; recordings under 3 s give none).

    → {"train" | "validation" | "testing": ["_background_noise_/<name>.wav#k", ...]}; empty lists without noise.
    """
    cuts: dict[str, list[str]] = {"train": [], "validation": [], "testing": []}
    folder = root / NOISE_FOLDER
    for recording in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
        info = sf.info(str(recording))
        n = int(info.frames / info.samplerate)
        if n < 3:
            continue
        train = _training_seconds(n)
        names = [f"{NOISE_FOLDER}/{recording.name}{CUT_MARK}{k}" for k in range(n)]
        cuts["train"] += names[:train]
        cuts["validation"] += names[train : (n + train) // 2]
        cuts["testing"] += names[(n + train) // 2 :]
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
    """One split of Speech Commands → `(waveform (L,) float32, label, path)`, L = length or sample_rate.

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
        length: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Speech Commands folder {self.root} does not exist")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
        if protocol not in ("official", "s4-paper"):
            raise ValueError(f"unknown protocol {protocol!r}; choose 'official' or 's4-paper'")
        if downsample not in ("resample", "decimate"):
            raise ValueError(f"unknown downsample {downsample!r}; choose 'resample' or 'decimate'")
        if downsample == "decimate" and NATIVE_RATE % sample_rate:
            raise ValueError(f"decimate needs a rate dividing {NATIVE_RATE} Hz, got {sample_rate}")
        self.split, self.sample_rate, self.downsample = SPLITS[split], sample_rate, downsample
        self.length = length if length is not None else sample_rate  # one second
        self.classes = self._classes(subset)
        if protocol == "s4-paper" and self.classes != SC10_CLASSES:
            raise ValueError("protocol 's4-paper' is defined for subset 'sc10' only")

        files = scan(self.root)
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
        if protocol == "official":
            val, test = (
                _read_list(self.root, "validation_list.txt"),
                _read_list(self.root, "testing_list.txt"),
            )
            held = {"validation": val, "testing": test}
            if self.split == "train":
                items = [it for it in items if _stem(it[0]) not in val and _stem(it[0]) not in test]
            else:
                items = [it for it in items if _stem(it[0]) in held[self.split]]
        else:
            items = sorted(_s4_paper_split(items, self.split))
        if subset == "sc12":
            items += [(cut, label_of[SILENCE]) for cut in noise_cuts(self.root)[self.split]]
        self.paths = [str(self.root / relative) for relative, _ in items]
        self.labels = [label for _, label in items]
        self._recordings: dict[str, torch.Tensor] = {}

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
        if self.sample_rate != NATIVE_RATE:
            if self.downsample == "decimate":
                wave = decimate(wave, NATIVE_RATE // self.sample_rate)
            else:
                wave = resample(wave, NATIVE_RATE, self.sample_rate)
        return pad_or_trim(wave, self.length), self.labels[index], path


class Augment:
    """Training-time augmentation of one clip (L,) → (L,): time shift, background noise, gain.

    `noises` are mono recordings at the clip's sample rate; randomness comes from the `rng` passed in.
    """

    def __init__(
        self,
        noises: Sequence[torch.Tensor] = (),
        sample_rate: int = 16000,
        shift_ms: float = 100,
        noise_prob: float = 0.8,
        snr_db: tuple[float, float] = (5, 30),
        gain_db: tuple[float, float] = (-12, 6),
    ) -> None:
        self.noises = [n for n in noises if n.shape[-1] > 0]
        self.max_shift = int(shift_ms * sample_rate / 1000)
        self.noise_prob, self.snr_db, self.gain_db = noise_prob, snr_db, gain_db

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        length = wave.shape[-1]
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1)) if self.max_shift else 0
        out = torch.zeros_like(wave)
        if shift >= 0:
            out[shift:] = wave[: length - shift]
        else:
            out[:shift] = wave[-shift:]
        if self.noises and rng.random() < self.noise_prob:
            noise = self.noises[int(rng.integers(len(self.noises)))]
            if noise.shape[-1] < length:
                noise = noise.repeat(length // noise.shape[-1] + 1)
            start = int(rng.integers(0, noise.shape[-1] - length + 1))
            segment = noise[start : start + length]
            signal_rms = out.pow(2).mean().sqrt().clamp_min(1e-5)
            noise_rms = segment.pow(2).mean().sqrt().clamp_min(1e-8)
            snr = rng.uniform(*self.snr_db)
            out = out + segment * (signal_rms / noise_rms / 10 ** (snr / 20))
        out = out * 10 ** (rng.uniform(*self.gain_db) / 20)
        return out.clamp(-1.0, 1.0)


class _Augmented(Dataset):
    """Applies `Augment` with a generator per worker process, seeded from the DataLoader's seed."""

    def __init__(self, dataset: SpeechCommands, augment: Augment, seed: int) -> None:
        self.dataset, self.augment, self.seed = dataset, augment, seed
        self._rng: np.random.Generator | None = None
        self._rng_key: int | None = None

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        # Worker seeds are drawn anew each epoch from the loader's seeded generator: reproducible, yet varied.
        key = info.seed if info is not None else self.seed
        if self._rng is None or self._rng_key != key:
            self._rng, self._rng_key = np.random.default_rng([self.seed, key]), key
        return self._rng

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        wave, label, path = self.dataset[index]
        return self.augment(wave, self._generator()), label, path


def load_noises(noise_dir: str | os.PathLike, sample_rate: int, training_part: bool = False) -> list[torch.Tensor]:
    """Every WAV in `noise_dir` → mono float32 (L,) at `sample_rate`. `training_part` keeps only the seconds
    that `noise_cuts` gives to training, so a dataset's own noise never brings its test silence into training.
    """
    noises = [load_audio(p, sample_rate) for p in sorted(Path(noise_dir).glob("*.wav"))]
    if training_part:
        noises = [n[: _training_seconds(n.shape[-1] // sample_rate) * sample_rate] for n in noises]
    return noises


class SpeechCommandsDataModule(L.LightningDataModule):
    """Train/validation/test loaders over `SpeechCommands`; `augment=True` augments the training split."""

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "sc10",
        protocol: str = "official",
        batch_size: int = 16,
        num_workers: int = 0,
        sample_rate: int = 16000,
        augment: bool = False,
        noise_dir: str | os.PathLike | None = None,
        shift_ms: float = 100,
        noise_prob: float = 0.8,
        snr_db: tuple[float, float] = (5, 30),
        gain_db: tuple[float, float] = (-12, 6),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.subset, self.protocol = Path(root), subset, protocol
        self.batch_size, self.num_workers, self.sample_rate, self.seed = (
            batch_size,
            num_workers,
            sample_rate,
            seed,
        )
        self.augment, self.noise_dir = augment, noise_dir
        self.augment_args = {
            "shift_ms": shift_ms,
            "noise_prob": noise_prob,
            "snr_db": snr_db,
            "gain_db": gain_db,
        }
        self._datasets: dict[str, Dataset] = {}

    def _dataset(self, split: str) -> Dataset:
        if split not in self._datasets:
            dataset = SpeechCommands(self.root, self.subset, split, self.sample_rate, self.protocol)
            if split == "train" and self.augment:
                noise_dir = Path(self.noise_dir) if self.noise_dir else self.root / "_background_noise_"
                own = noise_dir.resolve() == (self.root / NOISE_FOLDER).resolve()
                noises = load_noises(noise_dir, self.sample_rate, training_part=own) if noise_dir.is_dir() else []
                if not noises:
                    log.warning("no background noise found in %s: augmenting without noise", noise_dir)
                augment = Augment(noises, self.sample_rate, **self.augment_args)
                dataset = _Augmented(dataset, augment, self.seed)
            self._datasets[split] = dataset
        return self._datasets[split]

    @property
    def classes(self) -> tuple[str, ...]:
        dataset = self._dataset("test")
        return dataset.classes if isinstance(dataset, SpeechCommands) else dataset.dataset.classes

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in splits.get(stage, ("train", "validation", "test")):
            self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


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
            manifest = args.root / "manifest.json"
            if manifest.exists() and json.loads(manifest.read_text()).get("synthetic"):
                print(f"{args.root}: SYNTHETIC data (see its manifest.json)")
            for split, per_class in counts.items():
                print(
                    f"{split:10s} {sum(per_class.values()):6d}  " + " ".join(f"{w}={n}" for w, n in per_class.items())
                )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
