"""The demo's model card (app.bundle.LoadedModel.describe): a Markdown table made from an exported model's JSON,
for generated and for real data (with its provenance warning), and the rate-sweep figure shown beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.bundle import RATE_SWEEP_SUFFIX, load_bundle
from training.evaluation.evaluate import SWEEP_SUFFIX

PROVENANCE = "Speech Commands v0.02 test partition; never score on the official test split"


def copy_export(source: Path, folder: Path, **changes: dict) -> Path:
    """A copy of an exported model (weights + JSON) in `folder`, its JSON sections updated with `changes`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    shutil.copy(source, target)
    meta = json.loads(source.with_suffix(".json").read_text())
    meta.update(changes)
    target.with_suffix(".json").write_text(json.dumps(meta))
    return target


def rows(card: str) -> dict[str, str]:
    """The card's table as {row name: text}; also checks that every line is a table row."""
    lines = card.splitlines()
    assert lines[1] == "| --- | --- |" and all(line.startswith("| ") and line.endswith(" |") for line in lines)
    return {
        name.strip(" *"): text.strip()
        for name, text in (line.strip("|").split("|", 1) for line in lines[2:])  # a cell holds no "|"
    }


def test_card_of_a_model_trained_on_generated_speech(tiny_s4_export: Path) -> None:
    card = load_bundle(tiny_s4_export).describe()
    table = rows(card)
    assert card.startswith(f"| Model card | `{tiny_s4_export.name}` |")
    assert table["Model"].startswith("S4") and ", causal, " in table["Model"] and "trained at 16 kHz" in table["Model"]
    assert "parameters" in table["Model"] and table["Classes"].startswith("10: yes, no")
    assert "**SYNTHETIC**" in table["Learned from"] and "untrained test model" in table["Learned from"]
    assert "Provenance" not in card  # generated voices: nothing to warn about
    assert table["Accuracy, held-out voices"] == "16 kHz: **10.0%**"
    assert table["Size"].endswith("kB")


def test_card_of_a_12_class_model_on_real_speech_warns_of_its_provenance(
    tiny_sc12_bidirectional_export: Path, tmp_path: Path
) -> None:
    data = {"root": "speech_commands_real", "synthetic": False, "subset": "sc12", "provenance": PROVENANCE}
    data["heard_speakers"] = ["0a1b2c3d"]
    metrics = {
        "test_acc_16000": 0.7454,
        "test_acc_8000": 0.7318,
        "test_commands_acc_16000": 0.80,
        "test_commands_acc_8000": 0.785,
        "test_acc_8000-no-rescale": 0.12,
        "test_commands_rejected_16000": 0.053,
        "test_commands_rejected_8000": 0.06,
        "test_non_commands_rejected_16000": 0.891,
        "n_parameters": 2345,
        "epochs": 60,
    }
    calibration = {"offset": -0.7, "min_non_commands_rejected": 0.85, "split": "validation", "rates": [16000]}
    path = copy_export(
        tiny_sc12_bidirectional_export, tmp_path / "real", data=data, metrics=metrics, calibration=calibration
    )
    table = rows(load_bundle(path).describe())
    assert ", non-causal, 2,345 parameters" in table["Model"]
    assert table["Classes"].endswith("go, **silence**, **not a command**")
    assert table["Learned from"] == "real speech recordings (`speech_commands_real, sc12`)"
    assert table["⚠️ Provenance"] == PROVENANCE
    assert table["Accuracy (all 12 classes), held-out speakers"] == (
        "16 kHz: **74.5%** · 8 kHz (Δ·2): **73.2%** · 8 kHz, Δ unchanged: **12.0%**"
    )
    commands = table["Commands accuracy, held-out speakers"]
    assert commands.startswith("16 kHz: **80.0%** · 8 kHz (Δ·2): **78.5%**") and "counts wrong" in commands
    assert list(table).index("Accuracy (all 12 classes), held-out speakers") < list(table).index("Size")
    assert table["Answered silence / not a command, held-out speakers"] == (
        "commands: 16 kHz **5.3%** · 8 kHz **6.0%**; other words and silence: 16 kHz **89.1%**"
    )
    assert table["Other metrics"] == "epochs: 60"
    assert table["Rejection"].startswith("silence / not-a-command logits -0.70, chosen on the validation speakers")
    assert "at least 85% of other words" in table["Rejection"]
    fixed = copy_export(tiny_sc12_bidirectional_export, tmp_path / "fixed", calibration={"offset": -0.7, "split": None})
    assert rows(load_bundle(fixed).describe())["Rejection"] == (
        "silence / not-a-command logits -0.70, fixed by the training config (calibration.offset)"
    )


def test_rate_sweep_figure_beside_the_card(tiny_s4_export: Path, tmp_path: Path) -> None:
    assert RATE_SWEEP_SUFFIX == SWEEP_SUFFIX + ".png"  # the name training.evaluate writes is the one the app reads
    path = copy_export(tiny_s4_export, tmp_path / "model")
    bundle = load_bundle(path)
    assert bundle.rate_sweep_png is None
    png = tmp_path / "model" / f"{path.stem}-rate-sweep.png"
    shutil.copy(Path(__file__).resolve().parents[1] / "docs" / "app.png", png)  # any PNG will do
    assert bundle.rate_sweep_png == png

    ui = pytest.importorskip("app.ui")
    demo = ui.build_demo(bundle)
    ids = {c.get("props", {}).get("elem_id"): c for c in demo.config["components"]}
    assert "rate_sweep" in ids and "model_info" in ids
    assert ids["model_info"]["props"]["value"].startswith("| Model card |")
