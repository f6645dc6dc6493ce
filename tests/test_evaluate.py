"""training.evaluate: JSON layout, accuracy against a direct computation, dt_scale per rate, comparisons, errors,
the leak guard (heard speakers are not scored) and the 12-class keyword-spotting figures."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from s4 import S4Classifier
from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES, SILENCE, UNKNOWN, SpeechCommands
from training.evaluation import evaluate
from training.serving.export import FORMAT, export_model
from training.serving.models import build_model

KWARGS = {
    "s4": {"n_classes": 10, "d_model": 4, "n_layers": 2, "d_state": 4, "pool": [16, 4]},
    "cnn": {"n_classes": 10, "n_channels": 4},
}


def export_tiny(folder: Path, kind: str, data_root: Path) -> Path:
    torch.manual_seed(1)
    model = build_model(kind, **KWARGS[kind]).eval()
    meta = {
        "format": FORMAT,
        "model": kind,
        "model_kwargs": KWARGS[kind],
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(SC10_CLASSES),
        "data": {
            "root": str(data_root),
            "synthetic": True,
            "subset": "sc10",
            "protocol": "official",
            "description": "t",
        },
        "metrics": {},
        "created": "2026-01-01T00:00:00+00:00",
        "config": {},
    }
    return export_model(model, meta, folder / kind / "model.safetensors")


@pytest.fixture()
def s4_model(tiny_sc10: Path, tmp_path: Path) -> Path:
    return export_tiny(tmp_path, "s4", tiny_sc10)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_layout_and_accuracy_equal_a_direct_computation(s4_model: Path, tiny_sc10: Path, tmp_path: Path, capsys):
    out = tmp_path / "report.json"
    code, printed, _ = run(capsys, "--model", s4_model, "--data", tiny_sc10, "--rates", 16000, 8000, "--json", out)
    assert code == 0 and "accuracy" in printed
    document = json.loads(out.read_text())
    assert set(document) == {"excluded", "model", "data", "rates"} and list(document["rates"]) == ["16000", "8000"]
    assert document["excluded"] == 0  # synthetic data: the model's JSON names no heard speakers
    assert document["data"]["synthetic"] is True and document["data"]["split"] == "test"
    for key, dt_scale in (("16000", 1.0), ("8000", 2.0)):
        entry = document["rates"][key]
        assert set(entry) >= {"accuracy", "dt_scale", "per_class", "confusion"} and entry["dt_scale"] == dt_scale
        assert set(entry["per_class"]) == set(SC10_CLASSES) and {"precision", "recall"} <= set(
            entry["per_class"]["yes"]
        )
        assert len(entry["confusion"]) == 10 and sum(map(sum, entry["confusion"])) == 10 == entry["n_clips"]
        assert entry["labels"] == list(SC10_CLASSES) and "commands" not in entry  # 10 classes: nothing to reject

    model = build_model("s4", **KWARGS["s4"])
    model.load_state_dict(load_file(str(s4_model)))
    model.eval()
    dataset = SpeechCommands(tiny_sc10, "sc10", "test")
    waveform = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor(dataset.labels)
    with torch.no_grad():
        direct_16k = (model(waveform).argmax(-1) == labels).float().mean().item()
        resampled = torch.stack([SpeechCommands(tiny_sc10, "sc10", "test", 8000)[i][0] for i in range(len(dataset))])
        direct_8k = (model(resampled, dt_scale=2.0).argmax(-1) == labels).float().mean().item()
    assert document["rates"]["16000"]["accuracy"] == pytest.approx(direct_16k)
    assert document["rates"]["8000"]["accuracy"] == pytest.approx(direct_8k)


def test_dt_scale_two_at_8k_and_one_without_rescaling(s4_model, tiny_sc10, tmp_path, capsys, monkeypatch) -> None:
    seen: list[tuple[int, float]] = []
    forward = S4Classifier.forward

    def spy(self, waveform, dt_scale=1.0):
        seen.append((waveform.shape[-1], dt_scale))
        return forward(self, waveform, dt_scale)

    monkeypatch.setattr(S4Classifier, "forward", spy)
    out = tmp_path / "r.json"
    args = ("--model", s4_model, "--data", tiny_sc10, "--rates", 16000, 8000, "--no-rescale", "--json", out)
    assert run(capsys, *args)[0] == 0
    assert set(seen) == {(16000, 1.0), (8000, 2.0), (8000, 1.0)}
    rates = json.loads(out.read_text())["rates"]
    assert list(rates) == ["16000", "8000", "8000-no-rescale"] and rates["8000-no-rescale"]["dt_scale"] == 1.0


def test_decimate_and_comparison_with_the_cnn(s4_model, tiny_sc10, tmp_path, capsys) -> None:
    cnn = export_tiny(tmp_path, "cnn", tiny_sc10)
    out, folder = tmp_path / "c.json", tmp_path / "figures"
    args = ("--model", s4_model, "--compare", cnn, "--data", tiny_sc10, "--downsample", "decimate", "--json", out)
    code, printed, _ = run(capsys, *args, "--out", folder)
    assert code == 0 and "cnn:cnn/model" in printed and "s4:s4/model" in printed
    document = json.loads(out.read_text())
    assert document["model"]["kind"] == "s4" and document["compare"][0]["model"]["kind"] == "cnn"
    assert document["compare"][0]["rates"]["8000"]["dt_scale"] == 1.0  # a CNN has no step size
    assert (folder / "comparison.png").is_file() and (folder / "s4-model-confusion-8000.png").is_file()
    assert json.loads((folder / "cnn-model-confusion-16000.json").read_text())["classes"][0] == "yes"


def _one_line_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_one_line_errors(s4_model: Path, tiny_sc10: Path, tmp_path: Path, capsys) -> None:
    _one_line_error(
        *run(capsys, "--model", tmp_path / "no.safetensors", "--data", tiny_sc10)[::2], "no.safetensors", "not found"
    )
    _one_line_error(*run(capsys, "--model", s4_model, "--data", tmp_path / "nowhere")[::2], "nowhere", "does not exist")
    description = s4_model.with_suffix(".json")
    description.write_text(
        json.dumps({**json.loads(description.read_text()), "model": "cnn", "model_kwargs": KWARGS["cnn"]})
    )
    _one_line_error(*run(capsys, "--model", s4_model, "--data", tiny_sc10)[::2], "checkpoint from another model")
    (tmp_path / "last.ckpt").write_bytes(b"x")
    _one_line_error(*run(capsys, "--model", tmp_path / "last.ckpt", "--data", tiny_sc10)[::2], "training checkpoint")


def test_cli_subprocess_exit_status(tiny_sc10: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "training.evaluate", "--model", str(tmp_path / "x.json"), "--data", str(tiny_sc10)]
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}
    )
    _one_line_error(result.returncode, result.stderr, "x.safetensors", "not found")
    assert "Traceback" not in result.stderr


# ---- leak guard and 12 classes, on hand-made folders named like the real dataset ----------------------------

SPEAKERS = ("0a1b2c3d", "1b2c3d4e", "2c3d4e5f", "3d4e5f60", "4e5f6071")  # train, train, validation, test, test


def make_real_folder(root: Path, words=("yes", "no"), silence=False, said: dict | None = None) -> Path:
    """Each speaker says each word once, `<word>/<speaker>_nohash_0.wav`; no manifest.json, so "real" data.

    said: {speaker: its words} instead, for speakers of SPEAKERS (those left out say nothing).
    silence: also 2 `_silence_` clips (one in the testing list) and a 12 s noise recording (1 testing cut).
    """
    said = {speaker: words for speaker in SPEAKERS} if said is None else said
    test, val = [], []
    for k, speaker in enumerate(SPEAKERS):
        for word in said.get(speaker, ()):
            (root / word).mkdir(parents=True, exist_ok=True)
            relative = f"{word}/{speaker}_nohash_0.wav"
            sf.write(root / relative, 0.1 * np.sin(np.arange(16000) * (0.03 + 0.01 * k)), 16000, subtype="PCM_16")
            (test if k >= 3 else val if k == 2 else []).append(relative)
    if silence:
        (root / SILENCE).mkdir()
        for name in ("1037.wav", "1043.wav"):
            sf.write(root / SILENCE / name, np.zeros(16000), 16000, subtype="PCM_16")
        test.append(f"{SILENCE}/1043.wav")
        (root / "_background_noise_").mkdir()
        sf.write(root / "_background_noise_/hum.wav", 0.2 * np.sin(np.arange(12 * 16000) * 0.02), 16000)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


def export_for(folder: Path, classes, heard=None, answer: str | None = None) -> Path:
    """A tiny CNN for `classes`; answer: always predict that class. heard: its data.heard_speakers."""
    torch.manual_seed(0)
    kwargs = {"n_classes": len(classes), "n_channels": 4}
    model = build_model("cnn", **kwargs).eval()
    if answer is not None:  # a constant decision makes every figure of the report known exactly
        with torch.no_grad():
            model.decoder.weight.zero_()
            model.decoder.bias.copy_(torch.eye(len(classes))[list(classes).index(answer)])
    subset = "sc12" if len(classes) == 12 else "sc10"
    data = {"root": "elsewhere", "synthetic": False, "subset": subset, "protocol": "official", "description": "t"}
    if heard is not None:
        data["heard_speakers"] = sorted(heard)
    meta = {"format": FORMAT, "model": "cnn", "model_kwargs": kwargs, "sample_rate": 16000, "clip_samples": 16000}
    meta.update(classes=list(classes), data=data, metrics={}, created="2026-01-01T00:00:00+00:00", config={})
    return export_model(model, meta, folder / "model.safetensors")


# The two test speakers say different words, so the words scored name the clips scored. Training and validation
# speakers say test words too: a guard that matched on words, or on the wrong split, would show.
SAID = {
    SPEAKERS[0]: ("yes", "no", "up", "down", "bed"),
    SPEAKERS[2]: ("yes", "up"),
    SPEAKERS[3]: ("yes", "no"),
    SPEAKERS[4]: ("up", "down", "bed"),
}
SPEAKERLESS = {f"{SILENCE}/1043.wav", "_background_noise_/hum.wav#11"}  # silence: no speaker, always scored
CLASS_OF = {"bed": UNKNOWN, "_background_noise_": SILENCE}  # a clip's class from its folder, where they differ


@pytest.mark.parametrize("snr_db", [None, -6.0])
@pytest.mark.parametrize(
    "heard", [(), SPEAKERS[:1], (SPEAKERS[0], SPEAKERS[3]), SPEAKERS[4:], SPEAKERS[3:], ("ffffffff",)]
)
def test_leak_guard_scores_exactly_the_clips_of_unheard_speakers(
    tmp_path: Path, capsys, caplog, monkeypatch, heard: tuple[str, ...], snr_db: float | None
) -> None:
    root = make_real_folder(tmp_path / "real", silence=True, said=SAID)
    model = export_for(tmp_path / "m", SC12_CLASSES, heard=heard, answer="yes")
    test_clips = {f"{word}/{speaker}_nohash_0.wav": speaker for speaker in SPEAKERS[3:] for word in SAID[speaker]}
    expected = {clip for clip, speaker in test_clips.items() if speaker not in heard} | SPEAKERLESS
    excluded = len(test_clips) + len(SPEAKERLESS) - len(expected)
    split = SpeechCommands(root, "sc12", "test")
    relative = [Path(path).relative_to(root).as_posix() for path in split.paths]
    assert set(relative) == set(test_clips) | SPEAKERLESS  # the folder's test split is the table's

    scored: dict[str, torch.Tensor] = {}  # what the model is run on: path → waveform
    score = evaluate.dataset_logits

    def spy(model, meta, clips, *args):
        assert not scored  # one model: one pass over the clips for all its rates
        for index in range(len(clips)):
            wave, _, path = clips[index]
            scored[Path(path).relative_to(root).as_posix()] = wave
        return score(model, meta, clips, *args)

    monkeypatch.setattr(evaluate, "dataset_logits", spy)
    out = tmp_path / "r.json"
    noise = () if snr_db is None else ("--snr-db", snr_db)
    with caplog.at_level(logging.WARNING, logger="training.evaluation.evaluate"):
        code, printed, _ = run(capsys, "--model", model, "--data", root, "--subset", "sc12", *noise, "--json", out)
    assert code == 0 and set(scored) == expected
    # Each scored clip gets the input it gets with no guard: the same noise, whatever its neighbours' fate; with
    # --snr-db every speech clip is mixed, no silence clip.
    unguarded = split if snr_db is None else evaluate.noisy(split, snr_db)
    for path, wave in scored.items():
        assert torch.equal(wave, unguarded[relative.index(path)][0]), path
    mixed = {path for path, wave in scored.items() if not torch.equal(wave, split[relative.index(path)][0])}
    assert mixed == (set() if snr_db is None else expected - SPEAKERLESS)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    message = f"warning: {excluded} clips of speakers this model was trained or validated on are excluded from scoring"
    assert warnings == ([message] if excluded else [])
    document = json.loads(out.read_text())
    assert document["excluded"] == excluded and document["data"]["n_clips"] == len(split)  # the split, scored or not
    assert document["data"].get("snr_db") == snr_db
    assert document["model"]["trained_on"]["n_heard_speakers"] == len(heard)
    assert "heard_speakers" not in document["model"]["trained_on"]  # the list stays in the model's JSON
    # The report's own figures say the same: its confusion rows (true classes) count the expected clips' classes,
    # and a model that always answers "yes" is right on the expected "yes" clips only.
    counts = Counter(CLASS_OF.get(clip.split("/")[0], clip.split("/")[0]) for clip in expected)
    for key, entry in document["rates"].items():
        assert [sum(row) for row in entry["confusion"]] == [counts[name] for name in entry["labels"]], key
        assert entry["n_clips"] == len(expected) and entry["accuracy"] == pytest.approx(counts["yes"] / len(expected))
    assert printed.count(f" on {len(expected)} clips") == len(document["rates"])


def test_leak_guard_warning_is_one_line_on_stderr(tmp_path: Path) -> None:
    root = make_real_folder(tmp_path / "real")
    model = export_for(tmp_path / "m", SC10_CLASSES, heard=SPEAKERS[3:])
    command = [sys.executable, "-m", "training.evaluate", "--model", str(model), "--data", str(root), "--rates", "8000"]
    project = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["warning: 4 clips of speakers this model was trained or validated on are excluded from scoring"]
    assert "accuracy 0.0000 on 0 clips" in result.stdout  # every test clip was heard: nothing is scored


@pytest.mark.parametrize(
    ("answer", "commands", "non_commands"),
    [
        (UNKNOWN, {"accuracy": 0.0, "rejected": 1.0, "n_clips": 4}, {"rejected": 1.0, "n_clips": 4}),
        (SILENCE, {"accuracy": 0.0, "rejected": 1.0, "n_clips": 4}, {"rejected": 1.0, "n_clips": 4}),
        ("yes", {"accuracy": 0.5, "rejected": 0.0, "n_clips": 4}, {"rejected": 0.0, "n_clips": 4}),
    ],
)
def test_twelve_classes_commands_and_non_commands(tmp_path: Path, capsys, answer, commands, non_commands) -> None:
    # Test split: yes/no of 2 speakers (4 commands); bed of 2 speakers, 1 _silence_ clip, 1 noise cut (4 others).
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    model = export_for(tmp_path / "m", SC12_CLASSES, answer=answer)
    out = tmp_path / "r.json"
    code, printed, _ = run(capsys, "--model", model, "--data", root, "--subset", "sc12", "--json", out)
    assert code == 0
    document = json.loads(out.read_text())
    assert document["data"]["subset"] == "sc12" and document["excluded"] == 0
    for entry in document["rates"].values():
        assert entry["labels"] == list(SC12_CLASSES) and entry["n_clips"] == 8
        assert entry["commands"] == commands and entry["non_commands"] == non_commands
        column = SC12_CLASSES.index(answer)  # confusion: rows true, columns predicted, both in `labels` order
        assert [sum(row) for row in entry["confusion"]] == [2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]
        assert [row[column] for row in entry["confusion"]] == [sum(row) for row in entry["confusion"]]
    accuracy, rejected = commands["accuracy"], commands["rejected"]
    assert f"commands: accuracy {accuracy:.4f}, rejected {rejected:.4f} of 4 clips" in printed
    assert f"non-commands: rejected {non_commands['rejected']:.4f} of 4 clips" in printed


def test_twelve_class_model_on_an_sc10_only_folder(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "up"))
    model = export_for(tmp_path / "m", SC12_CLASSES)  # random weights: figures checked against the confusion
    out = tmp_path / "r.json"
    assert run(capsys, "--model", model, "--data", root, "--json", out)[0] == 0
    for entry in json.loads(out.read_text())["rates"].values():
        confusion = np.array(entry["confusion"])
        assert entry["n_clips"] == 6 == entry["commands"]["n_clips"] and "non_commands" not in entry
        assert entry["commands"]["accuracy"] == pytest.approx(np.trace(confusion) / 6)
        assert entry["commands"]["rejected"] == pytest.approx(confusion[:, 10:].sum() / 6)


def test_snr_db_mixes_the_test_part_of_the_noise_into_every_clip_but_silence(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no"), silence=True)
    clean = SpeechCommands(root, "sc12", "test")
    noisy = evaluate.noisy(clean, -6.0)
    # The 12 s hum's testing part is its last second; a one-second clip takes all of it, scaled to the SNR.
    hum = torch.from_numpy(sf.read(root / "_background_noise_/hum.wav", dtype="float32")[0][11 * 16000 :])
    for index in range(len(clean)):
        wave, label, path = clean[index]
        mixed, same_label, same_path = noisy[index]
        assert (same_label, same_path) == (label, path)
        if label == SC12_CLASSES.index(SILENCE):
            assert torch.equal(mixed, wave)
            continue
        added = mixed - wave
        scale = float(added @ hum / (hum @ hum))
        torch.testing.assert_close(added, scale * hum, rtol=0, atol=1e-5)
        snr = 20 * torch.log10(wave.pow(2).mean().sqrt() / added.pow(2).mean().sqrt())
        assert snr.item() == pytest.approx(-6.0, abs=0.05)
    model = export_for(tmp_path / "m", SC12_CLASSES)
    out = tmp_path / "r.json"
    assert run(capsys, "--model", model, "--data", root, "--snr-db", "-6", "--json", out)[0] == 0
    document = json.loads(out.read_text())
    assert document["data"]["snr_db"] == -6.0 and document["rates"]["16000"]["n_clips"] == len(clean)
    quiet = make_real_folder(tmp_path / "no-noise", words=("yes", "no"))
    code, _, err = run(capsys, "--model", model, "--data", quiet, "--snr-db", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "holds no noise recordings" in err


def test_keyword_report_counts() -> None:
    classes = ("yes", "no", SILENCE, UNKNOWN)
    labels = np.array([0, 0, 1, 1, 2, 3, 3])
    predictions = np.array([0, 3, 1, 2, 2, 0, 3])  # commands: right, rejected, right, rejected; others: 2 of 3
    report = evaluate.keyword_report(labels, predictions, classes)
    assert report == {
        "commands": {"accuracy": 0.5, "rejected": 0.5, "n_clips": 4},
        "non_commands": {"rejected": pytest.approx(2 / 3), "n_clips": 3},
    }


# ---- the rate sweep: accuracy vs input sampling rate --------------------------------------------------------

SWEEP_RATES = (4000, 8000, 16000, 44100)


def test_rate_sweep_plot_and_json_for_several_rates(tiny_s4_export: Path, tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "up"))  # 6 test clips of 2 unheard speakers
    cnn = export_for(tmp_path / "cnn", SC10_CLASSES)
    out, folder = tmp_path / "r.json", tmp_path / "figures"
    rates = [str(rate) for rate in SWEEP_RATES]
    args = ("--model", tiny_s4_export, "--compare", cnn, "--data", root, "--rates", *rates, "--no-rescale")
    code, printed, _ = run(capsys, *args, "--json", out, "--out", folder)
    assert code == 0 and "rate sweep:" in printed
    png = folder / f"{tiny_s4_export.stem}-rate-sweep.png"  # named after the first --model: the app's convention
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    sweep = json.loads(png.with_suffix(".json").read_text())
    assert sweep["rates"] == sorted(SWEEP_RATES) and sweep["metric"] == "accuracy" and "real data" in sweep["title"]
    assert [(c["kind"], c["rescaled"]) for c in sweep["curves"]] == [("s4", True), ("s4", False), ("cnn", None)]
    document = json.loads(out.read_text())
    rescaled, stale, cnn_curve = sweep["curves"]
    for rate in rates:  # the curves are the JSON report's figures; at the training rate Δ is the same either way
        assert rescaled["accuracy"][rate] == document["rates"][rate]["accuracy"]
        if rate != "4000":  # 4,000 samples are too short for the M5 CNN (it needs 6,848): left out, not a failure
            assert cnn_curve["accuracy"][rate] == document["compare"][0]["rates"][rate]["accuracy"]
        stale_key = rate if rate == "16000" else f"{rate}-no-rescale"
        assert stale["accuracy"][rate] == document["rates"][stale_key]["accuracy"]
    assert {c["n_classes"] for c in sweep["curves"]} == {10} and rescaled["n_clips"] == 6
    assert cnn_curve["accuracy"]["4000"] is None and "4000" not in document["compare"][0]["rates"]
    assert "max_pool1d" in document["compare"][0]["skipped_rates"]["4000"] and "skipped_rates" not in document

    two_rates = tmp_path / "two"  # two rates are the 1x / 0.5x bars: no curve
    args = ("--model", tiny_s4_export, "--data", root, "--rates", "16000", "8000", "--out", two_rates)
    assert run(capsys, *args)[0] == 0
    assert not list(two_rates.glob("*rate-sweep*")) and list(two_rates.glob("*confusion-8000.png"))


def test_rate_sweep_of_a_12_class_model_plots_its_commands_accuracy(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no"), silence=True)  # + silence clips: not scored
    model = export_for(tmp_path / "m", SC12_CLASSES, answer="yes")  # always "yes": commands accuracy is 1/2
    folder = tmp_path / "figures"
    args = ("--model", model, "--data", root, "--subset", "sc12", "--rates", "8000", "16000", "32000", "--out", folder)
    assert run(capsys, *args)[0] == 0
    sweep = json.loads((folder / "model-rate-sweep.json").read_text())
    assert sweep["metric"] == evaluate.COMMANDS_METRIC and "silence" in sweep["metric"]
    (curve,) = sweep["curves"]
    assert curve["n_classes"] == 12 and curve["n_clips"] == 4  # the command clips only
    assert curve["accuracy"] == {"8000": 0.5, "16000": 0.5, "32000": 0.5}
    assert (folder / "model-rate-sweep.png").is_file()
