"""The code stays in small pieces and in its rooms: no module over 400 lines and no function over 60 in the project's
packages, and every import of the project's own code follows the rules of README's "The library" (training/__init__.py
and each room's docstring say the same)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("s4", "training", "app", "benchmarks")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60
MODULES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# What each part may import of the project ("training.<room>" for a room of training/). Benchmarks (and scripts) time
# or prepare every stage, training and evaluation included, so they may import any room; what the serving face
# offers, they take from it.
FACE = "training.serving"
ROOMS = {
    "training.common": set(),
    "training.data": {"training.common"},
    "training.serving": {"training.common", "s4"},
    "training.evaluation": {"training.common", "training.data", "training.serving", "s4"},
    "training.fitting": {"training.common", "training.data", "training.serving", "training.evaluation", "s4"},
}
OUTSIDE = {
    "s4": set(),
    "app": {"s4", FACE},
    "notebooks": {"s4", FACE},
    "benchmarks": {"s4", "app", *ROOMS},
    "scripts": {"s4", "app", *ROOMS},
}
ENTRY_POINTS = sorted(p for p in (ROOT / "training").glob("*.py") if p.name != "__init__.py")
ENTRY_POINTS.append(ROOT / "training" / "data" / "__main__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_function_sizes(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has over {MAX_MODULE_LINES} lines: split it"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {path.name}: {', '.join(long)}"


def test_the_packages_were_found() -> None:
    assert len(MODULES) > 20 and {p.parent.name for p in MODULES} >= set(PACKAGES)
    assert NOTEBOOKS, "no notebook in notebooks/"


def project_imports(source: str) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of the project's own code, at any depth (in functions too); `from
    training import serving` reads as module "training.serving". Relative imports raise: the rules could not see
    them."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"line {node.lineno}: a relative import; write it absolute so the rules can see it")
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.module in ("training", "training.data") and all(
                (ROOT / node.module.replace(".", "/") / name).is_dir() for name in names
            ):
                found += [(node.lineno, f"{node.module}.{name}", []) for name in names]
            else:
                found.append((node.lineno, node.module, names))
    return [(line, module, names) for line, module, names in found if module.split(".")[0] in PACKAGES]


def part_of(module: str) -> str:
    """The part a module belongs to: "training.<room>" inside a room of training/, else its top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "training" and len(parts) > 1 else parts[0]


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one module, without IPython's % and ! lines."""
    cells = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    lines = [line for cell in cells for line in "".join(cell["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def face_names() -> set[str]:
    """The names of `training.serving.__all__`, read from its source."""
    tree = ast.parse((ROOT / "training" / "serving" / "__init__.py").read_text())
    (names,) = [node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"]
    return set(ast.literal_eval(names))


def broken_rules(source: str, part: str) -> list[str]:
    """The imports of `source`, a module of `part`, that the rules do not allow, in words."""
    allowed = {part} | ROOMS.get(part, set()) | OUTSIDE.get(part, set())
    broken = []
    for line, module, names in project_imports(source):
        target = part_of(module)
        if target not in allowed:
            broken.append(f"line {line}: {module} ({part} may import {', '.join(sorted(allowed - {part})) or 'none'})")
        elif target == FACE and part in ("app", "notebooks") and (module != FACE or not set(names) <= face_names()):
            broken.append(f"line {line}: {module} {names}: only the names of {FACE}.__all__, from {FACE} itself")
        elif not part.startswith("training") and module != FACE and set(names) & face_names():
            broken.append(f"line {line}: {sorted(set(names) & face_names())} from {module}: take them from {FACE}")
    return broken


ROOM_MODULES = [p for p in MODULES if p not in ENTRY_POINTS and p != ROOT / "training" / "__init__.py"]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", ROOM_MODULES + SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_rules(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    broken = broken_rules(path.read_text(), part_of(module))
    assert not broken, f"{path.relative_to(ROOT)} imports across the rules:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_only_the_serving_face(path: Path) -> None:
    broken = broken_rules(notebook_source(path), "notebooks")
    assert not broken, f"{path.name} imports across the rules:\n" + "\n".join(broken)


def test_the_rules_catch_a_crossing() -> None:
    """The checker itself: each kind of crossing the rules forbid is reported, and allowed imports are not."""
    assert broken_rules("from training.serving.export import load_model", "training.data")
    assert broken_rules("from training import fitting", "training.evaluation")
    assert broken_rules("import training.evaluation.plots", "training.serving")
    assert broken_rules("def f():\n    from app import ui", "s4")
    assert broken_rules("from training.serving.inference import predict_logits", "app")
    assert broken_rules("from training.serving import export_model", "notebooks")
    assert broken_rules("from training.common.audio import load_audio", "benchmarks")
    assert broken_rules("from training.audio import load_audio", "scripts")  # a module of no room
    with pytest.raises(AssertionError, match="relative import"):
        broken_rules("from .audio import load_audio", "training.common")
    assert not broken_rules("from training.common.audio import load_audio\nfrom s4 import S4", "training.serving")
    assert not broken_rules("from training.serving import load_model, predict_logits", "app")
    assert not broken_rules("from training.fitting.config import load_config", "benchmarks")


def test_training_holds_only_its_rooms_and_entry_points() -> None:
    rooms = {f"training.{p.name}" for p in (ROOT / "training").iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(ROOMS), "a new room of training/ needs its rule in ROOMS, README and training/__init__.py"
    init = ast.parse((ROOT / "training" / "__init__.py").read_text())
    assert len(init.body) == 1 and ast.get_docstring(init), "training/__init__.py holds its docstring only"


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_entry_points_are_thin(path: Path) -> None:
    """A module directly in training/ gives a command its name and nothing else: a docstring naming the command,
    `import sys`, `from training.<room>.<module> import main` and `if __name__ == "__main__": sys.exit(main())`."""
    tree = ast.parse(path.read_text())
    command = "training." + (path.parent.name if path.name == "__main__.py" else path.stem)
    assert (ast.get_docstring(tree) or "").startswith(f"`python -m {command}"), "the docstring names the command"
    statements = [ast.unparse(node) for node in tree.body[1:]]
    (main_import,) = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert part_of(main_import.module) in ROOMS and main_import.module.count(".") == 2
    assert statements == [
        "import sys",
        f"from {main_import.module} import main",
        "if __name__ == '__main__':\n    sys.exit(main())",
    ]
    assert "\ndef main(" in (ROOT / Path(*main_import.module.split("."))).with_suffix(".py").read_text()


def test_every_command_of_a_room_has_its_entry_point() -> None:
    """A room module with a `main` is a command; each has exactly one name, its entry point in training/."""
    named = [ast.parse(p.read_text()).body for p in ENTRY_POINTS]
    targets = sorted(node.module for body in named for node in body if isinstance(node, ast.ImportFrom))
    commands = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in ROOM_MODULES
        if p.parts[len(ROOT.parts)] == "training" and "\ndef main(" in p.read_text()
    )
    assert targets == commands
