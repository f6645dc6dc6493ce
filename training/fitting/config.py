"""Training configs: a YAML file over fixed defaults, dotted command-line overrides, and key checking.

Sections: seed, ensemble, model (kind + constructor options), data, optim, scheduler, trainer, test_rates, calibration.
An unknown key anywhere is a ConfigError naming it, so a typo never trains with a silent default.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from training.fitting.balance import BALANCE
from training.serving.ensemble import member_count
from training.serving.models import MODELS, model_options

DEFAULTS: dict = {
    "seed": 0,
    # Members trained one after another, member i with seed + i and its own folder OUT/member-i, then exported as
    # one model that averages their logits (training.serving.ensemble). 1: a single model in OUT. Trainer limits such as
    # max_time hold per member.
    "ensemble": 1,
    "model": {"kind": "s4"},  # plus any constructor option of that kind, n_classes excepted (from the data)
    "data": {
        "folders": None,  # Speech Commands folders to train on, e.g. [../a, ../b]; --data replaces them
        "subset": "sc10",
        "protocol": "official",
        "batch_size": 16,
        "num_workers": 0,
        "augment": False,
        "noise_dir": None,  # None: <data>/_background_noise_ if present
        "shift_ms": 100,
        "noise_prob": 0.8,
        "snr_db": [5, 30],
        "gain_db": [-12, 6],
        "speed": None,  # [low, high]: speed perturbation factor drawn per clip; None keeps the speed
        # Where real clips came from, written to the exported model's JSON: one text, or with several folders a
        # mapping folder name → text.
        "provenance": None,
        # none | sampler (every class drawn equally often, epoch_clips draws an epoch; None: the training set's
        # size) | weights (cross-entropy weights inversely proportional to the classes' clips). training.fitting.balance
        "balance": "none",
        "epoch_clips": None,
        # The splits to train on. [train, validation] is a final fit: every labelled speaker outside the test
        # split, no validation loop, the last epoch exported; its recipe must have been chosen on validation first.
        "train_on": ["train"],
    },
    "optim": {
        "lr": 0.01,
        "weight_decay": 0.0,
        "ssm_lr": 0.001,
        "label_smoothing": 0.0,
        "ema_decay": None,  # e.g. 0.998: validate and export an exponential moving average of the weights
        "mixup_alpha": None,  # e.g. 0.2: blend training clips and their labels, λ ~ Beta(alpha, alpha)
    },
    "scheduler": {
        "name": "none",  # none | cosine (linear warm-up, then cosine to 0 per step) | plateau (on val_balanced_acc)
        "warmup_steps": 0,
        "total_steps": None,  # cosine: None = the trainer's estimate of all steps
        "factor": 0.2,
        "patience": 20,
    },
    "trainer": {
        "max_epochs": 10,
        "max_steps": -1,
        "max_time": None,  # "DD:HH:MM:SS": stop there (best checkpoint still exported)
        "precision": "auto",  # auto: bf16-mixed on GPU, 32-true on CPU
        "gradient_clip_val": 0.0,
        "accumulate_grad_batches": 1,
        "val_check_interval": 1.0,
        "limit_train_batches": 1.0,
        "limit_val_batches": 1.0,
        "log_every_n_steps": 10,
        "checkpoint_every_n_steps": None,  # also save last.ckpt every n steps (mid-epoch resume points)
    },
    "test_rates": [16000, 8000],
    # A 12-class model's rejection offset, chosen on the validation split at test_rates (training.calibrate):
    # the best commands accuracy that still rejects this fraction of other words and silence. None: no offset.
    # Or a fixed offset (logit units), for a final fit that has no held-out validation speakers left to choose on.
    "calibration": {"min_non_commands_rejected": None, "offset": None},
}
TRAIN_SPLITS = ("train", "validation")
SCHEDULERS = ("none", "cosine", "plateau")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key or file."""


def _merge(defaults: dict, overrides: dict, prefix: str, allow: set[str] | None = None) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        allowed = allow if allow is not None else set(defaults)
        if key not in allowed:
            raise ConfigError(f"unknown config key {name!r} (known: {', '.join(sorted(allowed))})")
        if isinstance(defaults.get(key), dict) and key != "model":
            if not isinstance(value, dict):
                raise ConfigError(f"config key {name!r} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{name}.")
        else:
            merged[key] = value
    return merged


def validate(config: dict) -> dict:
    """Fill defaults and check every key; returns the complete config."""
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    merged = _merge(DEFAULTS, config, "")
    model = config.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"config key 'model' must be a mapping, got {model!r}")
    kind = model.get("kind", "s4")
    if kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r} in 'model.kind'; choose one of {', '.join(MODELS)}")
    options = set(model_options(kind)) - {"n_classes"}
    merged["model"] = _merge({"kind": kind}, model, "model.", allow=options | {"kind"})
    try:
        member_count(merged["ensemble"])
    except ValueError as error:
        raise ConfigError(str(error)) from error
    decay = merged["optim"]["ema_decay"]
    if decay is not None and not (isinstance(decay, float) and 0.0 < decay < 1.0):
        raise ConfigError(f"optim.ema_decay must be a number in (0, 1) or null, got {decay!r}")
    alpha = merged["optim"]["mixup_alpha"]
    if alpha is not None and not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha > 0):
        raise ConfigError(f"optim.mixup_alpha must be a positive number or null, got {alpha!r}")
    floor = merged["calibration"]["min_non_commands_rejected"]
    if floor is not None and not (isinstance(floor, (int, float)) and 0 < floor <= 1):
        raise ConfigError(f"calibration.min_non_commands_rejected must be a fraction in (0, 1] or null, got {floor!r}")
    if floor is not None and merged["data"]["subset"] != "sc12":
        raise ConfigError("calibration.min_non_commands_rejected needs data.subset sc12 (silence and unknown classes)")
    offset = merged["calibration"]["offset"]
    if offset is not None and (floor is not None or not isinstance(offset, (int, float))):
        raise ConfigError(
            f"calibration.offset must be a number, set instead of min_non_commands_rejected; got {offset!r}"
        )
    if offset is not None and merged["data"]["subset"] != "sc12":
        raise ConfigError("calibration.offset needs data.subset sc12 (silence and unknown classes)")
    _check_train_on(merged)
    _check_data(merged["data"])
    if merged["scheduler"]["name"] not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {merged['scheduler']['name']!r}; choose one of {', '.join(SCHEDULERS)}")
    return merged


def _check_train_on(config: dict) -> None:
    splits = config["data"]["train_on"]
    if not isinstance(splits, list) or "train" not in splits or not set(splits) <= set(TRAIN_SPLITS):
        raise ConfigError(f"data.train_on must be a list holding 'train' and optionally 'validation'; got {splits!r}")
    if "validation" not in splits:
        return
    if config["calibration"]["min_non_commands_rejected"] is not None:
        raise ConfigError(
            "data.train_on includes validation, so no unheard speakers are left to calibrate on: set"
            " calibration.offset (chosen on validation by an earlier run) instead of min_non_commands_rejected"
        )
    if config["scheduler"]["name"] == "plateau":
        raise ConfigError("scheduler plateau follows val_balanced_acc, and data.train_on including validation has none")


def _check_data(data: dict) -> None:
    if data["balance"] not in BALANCE:
        raise ConfigError(f"unknown data.balance {data['balance']!r}; choose one of {', '.join(BALANCE)}")
    clips = data["epoch_clips"]
    if clips is not None and not (isinstance(clips, int) and not isinstance(clips, bool) and clips > 0):
        raise ConfigError(f"data.epoch_clips must be a positive whole number or null, got {clips!r}")
    folders = data["folders"]
    if folders is not None and not (isinstance(folders, list) and folders and all(isinstance(f, str) for f in folders)):
        raise ConfigError(f"data.folders must be a non-empty list of folder paths or null, got {folders!r}")
    provenance = data["provenance"]
    texts = provenance.values() if isinstance(provenance, dict) else [provenance]
    if not all(text is None or isinstance(text, str) for text in texts):
        raise ConfigError(f"data.provenance must be a text, a mapping folder name → text, or null; got {provenance!r}")


def provenance_of(config: dict, names: Sequence[str]) -> dict[str, str | None]:
    """Folder name → its provenance text from config data.provenance: one text serves a single folder; with
    several folders it must be a mapping, whose names must all be among `names`."""
    provenance = config["data"]["provenance"]
    if not isinstance(provenance, dict):
        if provenance is not None and len(names) > 1:
            raise ConfigError(
                f"data.provenance is one text for {len(names)} folders: make it a mapping folder name → text"
                f" ({', '.join(names)})"
            )
        return dict.fromkeys(names, provenance)
    unknown = sorted(set(provenance) - set(names))
    if unknown:
        raise ConfigError(f"data.provenance names {', '.join(unknown)}, not among the data folders {', '.join(names)}")
    return {name: provenance.get(name) for name in names}


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config (not yet validated). A config may start from another with `extends: OTHER.yaml` (a path
    relative to its own folder): its sections are merged over OTHER's key by key, and a list or value replaces
    OTHER's, so a variant states only what it changes."""
    return _read_config(Path(path), ())


def _read_config(path: Path, chain: tuple[Path, ...]) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    if path.resolve() in chain:
        raise ConfigError(f"config file {path} extends itself through {' -> '.join(str(p) for p in chain)}")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    base = config.pop("extends", None)
    if base is None:
        return config
    if not isinstance(base, str):
        raise ConfigError(f"'extends' in {path} must be the path of another config file, got {base!r}")
    return _deep_update(_read_config(path.parent / base, (*chain, path.resolve())), config)


def _deep_update(base: dict, changes: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_override(config: dict, dotted: str, value: str) -> None:
    """Set config["a"]["b"] from "a.b" and a YAML scalar/list string ("64", "[4, 4, 1, 1]", "null")."""
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot override {dotted!r}: {key!r} is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {dotted}={value!r} is not a valid YAML value") from error
