"""training.fitting.config: a config that `extends` another states only its changes; the final-fit config of the
bundled recipe differs from it exactly where a final fit must."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.fitting.config import ConfigError, load_config, validate

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def write(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_variant_merges_over_its_base_key_by_key(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", {"seed": 3, "data": {"batch_size": 8, "snr_db": [0, 30], "augment": True}})
    variant = write(
        tmp_path / "variants" / "v.yaml",
        {"extends": "../base.yaml", "data": {"snr_db": [5, 10], "noise_dir": None}, "ensemble": 2},
    )
    assert load_config(variant) == {
        "seed": 3,
        "data": {"batch_size": 8, "snr_db": [5, 10], "augment": True, "noise_dir": None},
        "ensemble": 2,
    }


def test_extends_chains_and_leaves_the_base_untouched(tmp_path: Path) -> None:
    base = write(tmp_path / "a.yaml", {"data": {"batch_size": 8}})
    write(tmp_path / "b.yaml", {"extends": "a.yaml", "data": {"num_workers": 1}})
    c = write(tmp_path / "c.yaml", {"extends": "b.yaml", "data": {"batch_size": 4}})
    assert load_config(c) == {"data": {"batch_size": 4, "num_workers": 1}}
    assert load_config(base) == {"data": {"batch_size": 8}}


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.yaml": {"extends": "missing.yaml"}}, "missing.yaml not found"),
        ({"a.yaml": {"extends": "b.yaml"}, "b.yaml": {"extends": "a.yaml"}}, "extends itself"),
        ({"a.yaml": {"extends": "a.yaml"}}, "extends itself"),
        ({"a.yaml": {"extends": 3}}, "must be the path of another config file"),
    ],
)
def test_bad_extends_is_a_config_error(tmp_path: Path, files: dict, fragment: str) -> None:
    for name, config in files.items():
        write(tmp_path / name, config)
    with pytest.raises(ConfigError, match=fragment):
        load_config(tmp_path / "a.yaml")


def flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and key not in {"provenance"}:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_final_fit_is_the_bundled_recipe_on_more_speakers_with_the_same_steps() -> None:
    recipe = flatten(validate(load_config(CONFIGS / "sc12-real.yaml")))
    final = flatten(validate(load_config(CONFIGS / "sc12-real-final.yaml")))
    changed = {key: (recipe[key], final[key]) for key in recipe if recipe[key] != final[key]}
    assert changed == {
        "data.train_on": (["train"], ["train", "validation"]),
        "data.epoch_clips": (None, 7936),
        "calibration.min_non_commands_rejected": (0.92, None),
        "calibration.offset": (None, -0.45),
    }
    assert recipe["data.batch_size"] == 32  # 7936 / 32 = 248 batches an epoch, the validated schedule's
