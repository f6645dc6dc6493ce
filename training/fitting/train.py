"""Train a Speech Commands classifier (S4 or the M5 CNN baseline) from a YAML config, then export and test it.

    python -m training.train --config training/configs/cpu-small.yaml --data data/sc10-synth --out runs/cpu-small
    python -m training.train --config training/configs/sc12-real.yaml --data REAL EXTRA   # several folders at once
    python -m training.train --config training/configs/sc10.yaml --data DIR --devices 4 --num-nodes 2   # DDP
    python -m training.train ... --resume                  # continue from OUT/checkpoints/last.ckpt
    python -m training.train ... --model.d_model 64 --set trainer.max_epochs=3   # dotted overrides

Writes under OUT: checkpoints/{best-*.ckpt,last.ckpt}, logs/version_*/metrics.csv, tb/ (TensorBoard),
model.safetensors + model.json (the best checkpoint, exported), test_metrics.json, learning_curves.png.
A final fit (config data.train_on: [train, validation]) has no validation loop: it exports the last epoch.
Several --data folders (or config data.folders) train as one: each folder keeps its own splits, the splits are
concatenated, and the exported JSON lists every folder (data.folders) and every speaker heard in any of them.
An ensemble (config ensemble: n > 1) trains member i with seed + i in OUT/member-i (checkpoints, logs, curves),
one after another, then exports and tests the model that averages their logits in OUT; --resume continues
the member that was running and skips the finished ones in seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import nn

from training.common.cli import USER_ERRORS, report_error, require_data_folders
from training.common.progress import is_terminal
from training.data.clip_index import describe_data
from training.data.speech_commands import open_split
from training.evaluation.evaluate import evaluate_model, heard_speakers
from training.evaluation.plots import learning_curves
from training.fitting.calibrate import calibrate, set_offset, validation_clips
from training.fitting.checkpoint_io import AtomicCheckpointIO
from training.fitting.config import ConfigError, apply_override, load_config, provenance_of, validate
from training.fitting.datamodule import SpeechCommandsDataModule
from training.fitting.lightning_module import VALIDATION_METRIC, SpeechClassifier
from training.fitting.progress_callback import LineProgressCallback
from training.serving.ensemble import Ensemble, combine
from training.serving.export import FORMAT, export_model, test_metrics

log = logging.getLogger("training.train")
CLIP_SECONDS = 1
SETUP_ERRORS = (*USER_ERRORS, MisconfigurationException)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Any config key can be overridden with a dotted option, '--model.d_model 64', or with "
            "'--set model.d_model=64' (repeatable); values are YAML ('[4, 4, 1, 1]', 'null'). "
            "Errors end with one line on stderr and exit status 2."
        ),
    )
    parser.add_argument("--config", required=True, type=Path, help="YAML config (training/configs/*.yaml)")
    parser.add_argument(
        "--data", nargs="+", type=Path, help="dataset folder(s) in the Speech Commands layout (default: data.folders)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder (default runs/train)")
    parser.add_argument("--accelerator", default="auto", help="auto | cpu | gpu | cuda (default auto)")
    parser.add_argument("--devices", default="1", help="devices per node: N or 'auto'; more than one runs DDP")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes for multi-node DDP (default 1)")
    parser.add_argument("--max-epochs", type=int, help="override trainer.max_epochs")
    parser.add_argument("--max-steps", type=int, help="override trainer.max_steps (-1: no limit)")
    parser.add_argument("--noise-dir", type=Path, help="background-noise WAVs for augmentation (data.noise_dir)")
    parser.add_argument("--seed", type=int, help="override seed")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted config override")
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, dict]:
    """Command line → (namespace, complete validated config)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = [item.split("=", 1) for item in args.set if "=" in item]
    if len(overrides) != len(args.set):
        raise ConfigError(f"--set expects KEY=VALUE, got {[s for s in args.set if '=' not in s]}")
    while rest:
        option = rest.pop(0)
        if not option.startswith("--") or "." not in option:
            raise ConfigError(f"unrecognised argument {option!r} (dotted overrides look like --model.d_model 64)")
        key, _, value = option[2:].partition("=")
        if not value:
            if not rest:
                raise ConfigError(f"override {option} needs a value")
            value = rest.pop(0)
        overrides.append((key, value))
    config = load_config(args.config)
    for key, value in overrides:
        apply_override(config, key, value)
    for key, value in (
        ("trainer.max_epochs", args.max_epochs),
        ("trainer.max_steps", args.max_steps),
        ("data.noise_dir", args.noise_dir),
        ("seed", args.seed),
    ):
        if value is not None:
            apply_override(config, key, json.dumps(str(value) if isinstance(value, Path) else value))
    config = validate(config)
    if args.data is None:
        if config["data"]["folders"] is None:
            raise ConfigError("no data: pass --data FOLDER [FOLDER ...] or set data.folders in the config")
        args.data = [Path(folder) for folder in config["data"]["folders"]]
    return args, config


def _devices(value: str) -> int | str:
    return value if value == "auto" else int(value)


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _precision(setting: str, accelerator: str) -> str:
    if setting != "auto":
        return setting
    return "bf16-mixed" if _on_gpu(accelerator) else "32-true"


def _check_resume(checkpoint: Path, config: dict) -> None:
    """Refuse a last.ckpt trained with another model config (it would fail deep inside Lightning)."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        saved_model = saved["hyper_parameters"]["config"]["model"]
    except Exception as error:  # torch.load raises many types for a damaged or foreign file
        raise ConfigError(
            f"cannot resume: {checkpoint} is not a training checkpoint of this project ({error})"
        ) from error
    if saved_model != config["model"]:
        raise ConfigError(f"cannot resume: {checkpoint} is a checkpoint from another model ({saved_model})")


def make_trainer(
    args: argparse.Namespace, config: dict, out: Path, validates: bool
) -> tuple[L.Trainer, ModelCheckpoint | None]:
    """Trainer with best/last checkpoints, CSV + TensorBoard logs and a progress bar; DDP for > 1 device.

    Without a held-out validation split (`validates` False: a final fit) it runs no validation loop and keeps no
    best checkpoint (None).
    """
    settings = dict(config["trainer"])
    if not validates:
        settings["limit_val_batches"] = 0
    every_n = settings.pop("checkpoint_every_n_steps")
    precision = _precision(settings.pop("precision"), args.accelerator)
    devices = _devices(args.devices)
    distributed = args.num_nodes > 1 or (devices != "auto" and devices > 1)
    best = ModelCheckpoint(
        out / "checkpoints", "best-{epoch}-{step}", monitor=VALIDATION_METRIC, mode="max", save_top_k=1
    )
    last = ModelCheckpoint(out / "checkpoints", save_top_k=0, save_last=True, every_n_train_steps=every_n)
    # A bar on a terminal; in a file or pipe, plain lines instead of thousands of carriage-return redraws.
    bar = TQDMProgressBar(refresh_rate=1) if is_terminal(sys.stdout) else LineProgressCallback()
    callbacks = ([best] if validates else []) + [last, LearningRateMonitor("step"), bar]
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=devices,
        num_nodes=args.num_nodes,
        strategy="ddp" if distributed else "auto",
        sync_batchnorm=distributed and _on_gpu(args.accelerator),  # SyncBatchNorm is CUDA-only
        precision=precision,
        callbacks=callbacks,
        enable_progress_bar=isinstance(bar, TQDMProgressBar),
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tb")],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=out,
        **settings,
    )
    return trainer, best if validates else None


def _roots(root: Path | Sequence[Path]) -> list[Path]:
    return [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]


def data_record(config: dict, root: Path | Sequence[Path], sample_rate: int) -> dict:
    """The exported JSON's "data" section: folder name, synthetic or not, description, subset, protocol, and
    "folders", each data folder's own record (root, synthetic, description; provenance when real).

    Real data adds the leak guard: "heard_speakers", the sorted speaker hashes of every training and validation
    clip of every folder (evaluation never scores them), and "provenance" (config data.provenance: where the clips
    came from). Several folders are named together ("a+b"), synthetic if any of them is, their provenance texts
    joined as "a: text; b: text".
    """
    roots = _roots(root)
    subset, protocol = config["data"]["subset"], config["data"]["protocol"]
    folders = [describe_data(path) for path in roots]
    provenance = provenance_of(config, [folder["root"] for folder in folders])
    for folder in folders:
        if not folder["synthetic"]:
            folder["provenance"] = provenance[folder["root"]]
    if len(folders) == 1:
        record = dict(folders[0])
    else:
        record = {
            "root": "+".join(folder["root"] for folder in folders),
            "synthetic": any(folder["synthetic"] for folder in folders),
            "description": "; ".join(f"{folder['root']}: {folder['description']}" for folder in folders),
        }
        texts = [f"{folder['root']}: {folder['provenance']}" for folder in folders if folder.get("provenance")]
        if not all(folder["synthetic"] for folder in folders):
            record["provenance"] = "; ".join(texts) or None
    record.update(subset=subset, protocol=protocol, folders=folders)
    if not all(folder["synthetic"] for folder in folders):
        splits = [open_split(roots, subset, split, sample_rate, protocol) for split in ("train", "validation")]
        record["heard_speakers"] = heard_speakers(splits)
    return record


def export_and_test(
    model: nn.Module, config: dict, data: SpeechCommandsDataModule, root: Path | Sequence[Path], out: Path
) -> Path:
    """Export the trained model (a `SpeechClassifier.inference_model()`, or an `Ensemble` of them; its rejection
    offset calibrated on the validation split, or fixed, if the config asks), test it on the test split at each
    configured rate, store the metrics. `root`: the data folder, or the folders, whose splits it was trained on."""
    model = model.cpu().eval()
    options = {k: v for k, v in config["model"].items() if k != "kind"}
    meta = {
        "format": FORMAT,
        "model": config["model"]["kind"],
        "model_kwargs": {"n_classes": len(data.classes), **options},
        "ensemble": len(model.members) if isinstance(model, Ensemble) else 1,
        "sample_rate": data.sample_rate,
        "clip_samples": data.sample_rate * CLIP_SECONDS,
        "classes": list(data.classes),
        "data": data_record(config, root, data.sample_rate),
        "metrics": {},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
    }
    subset, protocol = config["data"]["subset"], config["data"]["protocol"]
    floor, offset = config["calibration"]["min_non_commands_rejected"], config["calibration"]["offset"]
    if floor is not None:
        validation = validation_clips(_roots(root), subset, data.sample_rate, protocol)
        meta["calibration"] = calibrate(model, meta, validation, config["test_rates"], floor)
    elif offset is not None:
        set_offset(model, meta["classes"], offset)
        meta["calibration"] = {"offset": offset, "split": None}  # fixed by the config, not chosen on this model
    test = open_split(_roots(root), subset, "test", data.sample_rate, protocol)
    with torch.no_grad():  # evaluate_model leaves out clips of heard speakers (none here: the splits are disjoint)
        results = evaluate_model(model, meta, test, config["test_rates"])
    meta["metrics"] = test_metrics(results)
    meta["metrics"]["n_parameters"] = sum(p.numel() for p in model.parameters())
    (out / "test_metrics.json").write_text(json.dumps(results, indent=1) + "\n")
    return export_model(model, meta, out / "model.safetensors")


def member_folders(config: dict, out: Path) -> list[Path]:
    """Where each member trains: OUT itself for a single model, OUT/member-i for an ensemble's member i."""
    n = config["ensemble"]
    return [out] if n == 1 else [out / f"member-{index}" for index in range(n)]


def _check_start(args: argparse.Namespace, config: dict, folders: list[Path]) -> None:
    """Refuse to overwrite a run without --resume, and to resume one trained with another model config."""
    started = [last for last in (folder / "checkpoints" / "last.ckpt" for folder in folders) if last.exists()]
    if started and not args.resume:
        raise ConfigError(f"{args.out} already holds a run ({started[0]}); pass --resume or choose another --out")
    for last in started:
        _check_resume(last, config)
    if args.resume and not started:
        log.info("nothing to resume in %s: starting a new run", args.out)


def _data_module(args: argparse.Namespace, config: dict, seed: int) -> SpeechCommandsDataModule:
    loading = {k: v for k, v in config["data"].items() if k not in ("provenance", "folders")}  # for the export
    return SpeechCommandsDataModule(args.data, sample_rate=16000, seed=seed, **loading)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args, config = parse_args(argv)
        folders = member_folders(config, args.out)
        _check_start(args, config, folders)
        require_data_folders(args.data)
        provenance_of(config, [describe_data(folder)["root"] for folder in args.data])  # a bad mapping fails now
        data = _data_module(args, config, config["seed"])
        n_classes = len(data.classes)  # reads the folder now, so a bad dataset fails before training starts
        if config["calibration"]["min_non_commands_rejected"] is not None:  # and so does one it cannot calibrate on
            validation_clips(args.data, config["data"]["subset"], 16000, config["data"]["protocol"])
    except SETUP_ERRORS as error:
        return report_error(error)
    members = []
    for index, folder in enumerate(folders):
        seed = config["seed"] + index
        try:
            if index:  # member 0's data module is the one read above
                data = _data_module(args, config, seed)
            folder.mkdir(parents=True, exist_ok=True)
            # Before seeding: its errors come without log lines.
            trainer, best = make_trainer(args, config, folder, data.validates)
        except SETUP_ERRORS as error:
            return report_error(error)
        if len(folders) > 1:
            log.info("ensemble member %d of %d (seed %d) in %s", index + 1, len(folders), seed, folder)
        L.seed_everything(seed, workers=True)
        counts = data.class_counts if config["data"]["balance"] == "weights" else None
        module = SpeechClassifier(config, n_classes, counts)
        last = folder / "checkpoints" / "last.ckpt"
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if args.resume and last.exists() else None)
        # The periodic last.ckpt may be up to checkpoint_every_n_steps behind: save where training ended, so that
        # --resume finds a finished member finished instead of training its last steps again.
        trainer.save_checkpoint(last)
        if not trainer.is_global_zero:
            continue
        if best is not None and best.best_model_path:  # validation ran: export the best epoch, not the last
            module = SpeechClassifier.load_from_checkpoint(best.best_model_path, map_location="cpu")
        members.append(module.inference_model())
        logs = sorted((folder / "logs").glob("version_*/metrics.csv"))
        if logs:
            on = " + ".join(str(folder) for folder in args.data)
            name = f"{args.config.name}{f' (member {index})' if len(folders) > 1 else ''} on {on}"
            learning_curves(logs, folder / "learning_curves.png", title=name)
    if not members:  # another DDP rank: rank 0 exports
        return 0
    path = export_and_test(combine(members), config, data, args.data, args.out)
    meta = json.loads(path.with_suffix(".json").read_text())
    print(f"exported {path}; test metrics: {json.dumps(meta['metrics'])}")
    return 0
