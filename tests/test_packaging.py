"""The package people install: the dependencies pyproject.toml declares are the ones the code imports, with ranges
that hold requirements.txt's pins; the wheel carries the license, the notice and the bundled model, and `s4` imports
from it outside this checkout."""

from __future__ import annotations

import ast
import email
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
IMPORT_NAMES = {"sklearn": "scikit-learn", "yaml": "pyyaml"}  # import name → distribution, where they differ
# Needed though never imported by name. triton: pinned with torch for the GPU kernels, imported by s4.cauchy only
# when importlib finds it, so not declared; tensorboard: what Lightning's TensorBoardLogger writes with.
UNIMPORTED = {"triton": None, "tensorboard": "train"}
# (where the code starts, the extras that must cover every third-party import of the code it reaches)
PARTS = [("s4", []), ("app", ["app"]), ("training", ["train"])]
PROJECT_PACKAGES = ("s4", "training", "app")


def name_of(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirements.Requirement(requirement).name).lower()


def declared(extras: list[str]) -> set[str]:
    chosen = PROJECT["dependencies"] + [r for extra in extras for r in PROJECT["optional-dependencies"][extra]]
    return {name_of(r) for r in chosen}


def module_file(module: str) -> Path | None:
    path = ROOT / Path(*module.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def reached_imports(start: str) -> set[str]:
    """Distribution names of the third-party modules imported (at any depth) by every module of the package
    `start` and by every project module those reach, their packages' __init__ included."""
    todo = sorted((ROOT / start).rglob("*.py"))
    seen, outside = set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        modules = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for module in modules:
            parts = module.split(".")
            if parts[0] not in PROJECT_PACKAGES:
                outside.add(parts[0])
            todo += [f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]))) is not None]
    modules = outside - set(sys.stdlib_module_names) - set(UNIMPORTED) - {"benchmarks"}
    return {IMPORT_NAMES.get(module, module).lower() for module in modules}


@pytest.mark.parametrize(("start", "extras"), PARTS, ids=[start for start, _ in PARTS])
def test_declared_dependencies_are_what_the_code_imports(start: str, extras: list[str]) -> None:
    imported = reached_imports(start)
    needed = imported | {name for name, extra in UNIMPORTED.items() if extra in extras}
    assert imported <= declared(extras), f"imported but not declared: {sorted(imported - declared(extras))}"
    if extras:  # an extra lists nothing its code does not use
        unused = declared(extras) - declared([]) - needed
        assert not unused, f"declared in [{extras[0]}] but not imported from {start}/: {sorted(unused)}"


def test_pins_fall_in_the_declared_ranges() -> None:
    """Every runtime pin of requirements.txt (the lines before its test tools) is a declared dependency whose range
    holds the pinned version, and every declared dependency is pinned: a pin nothing declares is a stale one."""
    runtime = (ROOT / "requirements.txt").read_text().split("# tests")[0]
    pins = {}
    for line in runtime.splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name_of(name)] = version
    ranges = {
        name_of(r): requirements.Requirement(r).specifier
        for r in PROJECT["dependencies"] + sum(PROJECT["optional-dependencies"].values(), [])
    }
    assert set(pins) == set(ranges) | {name for name, extra in UNIMPORTED.items() if extra is None}
    outside = {name: f"{pins[name]} not in {spec}" for name, spec in ranges.items() if pins[name] not in spec}
    assert not outside, outside


def test_license_and_notice() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text and len(license_text.splitlines()) > 150
    notice = (ROOT / "NOTICE").read_text()
    for needed in ("CC BY 4.0", "arXiv:1804.03209", "Warden", "0.02", "0.01", "app/default_model", "app/examples"):
        assert needed in notice, f"NOTICE does not say {needed!r}"


def test_the_wheel_installs_and_imports_s4(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources (no build isolation: offline), install it without dependencies
    into a folder of its own, and import `s4` and the serving face from there, away from this checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("s4", "training", "app"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source], check=True)
    (wheel,) = wheels.glob("s4_speech-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(archive.read(metadata))
    assert {"s4/__init__.py", "training/serving/__init__.py", "app/__main__.py"} <= names
    assert {"app/default_model/s4-sc12-real.safetensors", "training/configs/sc12-real.yaml"} <= names
    assert {n.rsplit("/", 1)[-1] for n in names if "/licenses/" in n} == {"LICENSE", "NOTICE"}
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert meta["License-Expression"] == "Apache-2.0"
    assert "torch<3,>=2.14" in meta.get_all("Requires-Dist")

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", site, wheel], check=True)
    probe = (
        "import torch, s4, training.serving as face; from s4 import S4Classifier; "
        "model = S4Classifier(n_classes=3, d_model=4, n_layers=1, d_state=4); "
        "print(s4.__file__, face.__file__, tuple(model(torch.randn(2, 400)).shape))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    s4_file, face_file, shape = result.stdout.split(maxsplit=2)
    assert Path(s4_file).is_relative_to(site) and Path(face_file).is_relative_to(site)
    assert shape.strip() == "(2, 3)"
