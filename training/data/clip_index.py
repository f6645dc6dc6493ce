"""What a Speech Commands folder holds: its description (`describe_data`, from its manifest.json) and its index,
every clip's length in samples, cached beside the data.

Scanning 100k clips' headers takes a while; the cache is reused while the folders' modification times are
unchanged, and kept in ~/.cache/s4-speech when the data folder is read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from training.common.audio import AudioError

log = logging.getLogger(__name__)

NATIVE_RATE = 16000
SILENCE = "_silence_"
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


def describe_data(root: str | os.PathLike) -> dict:
    """{"root", "synthetic", "description"} of a dataset folder, from its manifest.json when it has one.

    The start of an exported model's "data" record, and of an evaluation report's. "root" is the folder's name
    only: exported models and reports carry no paths of the machine they came from.
    """
    root = Path(root)
    manifest = root / "manifest.json"
    info = {"root": root.resolve().name, "synthetic": False, "description": "Speech Commands folder (no manifest.json)"}
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            info["synthetic"] = bool(data.get("synthetic", False))
            info["description"] = str(data.get("description", info["description"]))
        except ValueError:
            pass  # an unreadable manifest leaves the cautious default
    return info
