"""Exported models: weights in `<stem>.safetensors`, everything needed to rebuild and describe them in `<stem>.json`.

    export_model(model, meta, "runs/x/model.safetensors")
    model, meta = load_model("runs/x/model.json")   # or the .safetensors path; eval mode

meta: format, model ("s4" | "cnn"), model_kwargs (constructor kwargs), sample_rate (training rate in Hz),
clip_samples, classes, data {root, synthetic, subset, protocol, description}, metrics, created, config, and for an
ensemble (`training.serving.ensemble`) "ensemble": the number of members, each built from model_kwargs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from training.common.atomic import atomic_write
from training.serving.ensemble import combine, member_count
from training.serving.models import MODELS, build_model

FORMAT = "s4-speech-model/1"
REQUIRED = ("format", "model", "model_kwargs", "sample_rate", "classes")


class ModelFileError(ValueError):
    """An exported model that cannot be loaded; the message names the file and the problem."""


def test_metrics(results: dict[str, dict]) -> dict[str, float]:
    """The export's "metrics" from `training.evaluation.evaluate.evaluate_model` results on the test split: accuracy
    per rate key, and for a keyword spotter its commands accuracy, commands rejected and non-commands rejected."""
    metrics = {}
    for key, result in results.items():
        metrics[f"test_acc_{key}"] = result["accuracy"]
        if "commands" in result:
            metrics[f"test_commands_acc_{key}"] = result["commands"]["accuracy"]
            metrics[f"test_commands_rejected_{key}"] = result["commands"]["rejected"]
        if "non_commands" in result:
            metrics[f"test_non_commands_rejected_{key}"] = result["non_commands"]["rejected"]
    return metrics


def export_model(model: nn.Module, meta: dict, path: str | os.PathLike) -> Path:
    """Write `model`'s weights and `meta` as `<stem>.safetensors` + `<stem>.json`; returns the .safetensors path."""
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"model metadata lacks {', '.join(missing)}")
    weights = Path(path).with_suffix(".safetensors")
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    atomic_write(weights, lambda handle: handle.write(save(state, metadata={"format": FORMAT})))
    text = json.dumps(meta, indent=1, default=str) + "\n"
    atomic_write(weights.with_suffix(".json"), lambda handle: handle.write(text.encode()))
    return weights


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise ModelFileError(f"{path}: model description (JSON) not found next to the weights")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an s4-speech model description (expected format {FORMAT!r})")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ModelFileError(f"{path}: model description lacks {', '.join(missing)}")
    if meta["model"] not in MODELS:
        raise ModelFileError(f"{path}: unknown model kind {meta['model']!r} (known: {', '.join(MODELS)})")
    return meta


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """`<stem>.safetensors` or `<stem>.json` → (model in eval mode, meta). Any problem is a ModelFileError."""
    path = Path(path)
    if path.suffix not in (".safetensors", ".json"):
        hint = " (a training checkpoint: use the exported model.safetensors)" if path.suffix == ".ckpt" else ""
        raise ModelFileError(f"{path}: not an exported model; expected a .safetensors or .json file{hint}")
    weights, description = path.with_suffix(".safetensors"), path.with_suffix(".json")
    if not weights.is_file():
        raise ModelFileError(f"{weights}: model file not found")
    meta = _read_meta(description)
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{weights}: not a safetensors file ({error})") from error
    try:
        members = member_count(meta.get("ensemble", 1))
    except ValueError as error:
        raise ModelFileError(f"{description}: {error}") from error
    try:
        model = combine([build_model(meta["model"], **meta["model_kwargs"]) for _ in range(members)])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{description}: invalid model_kwargs ({error})") from error
    expected = model.state_dict()
    if {key.split(".")[0] for key in state} != {key.split(".")[0] for key in expected}:
        raise ModelFileError(
            f"{weights}: checkpoint from another model: its layers are not those of a {meta['model']!r} model"
        )
    mismatched = sorted(set(state) ^ set(expected)) + sorted(
        k for k in set(state) & set(expected) if state[k].shape != expected[k].shape
    )
    if mismatched:
        shown = ", ".join(mismatched[:5]) + (" ..." if len(mismatched) > 5 else "")
        raise ModelFileError(f"{weights}: weights do not match the config in {description.name} ({shown})")
    model.load_state_dict(state)
    return model.to(map_location).eval(), meta
