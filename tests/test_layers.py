"""The layers hold: every import in every module (lazy ones inside functions too) is read from the source.

robots/ <- vla/ <- policies/ <- sim/ <- the command line (vla/cli/) and benchmarks/; robots/ needs neither
torch nor a simulator (it is what a robot's computer installs), and nothing in the library imports the
command line."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("robots", "vla", "policies", "sim", "benchmarks")
MAY_IMPORT = {  # layer -> the project layers its modules may import
    "robots": {"robots"},
    "vla": {"vla", "robots"},
    "policies": {"policies", "vla", "robots"},
    "sim": {"sim", "policies", "vla", "robots"},
    "benchmarks": {"benchmarks", "sim", "policies", "vla", "robots"},
    "cli": {"cli", "benchmarks", "sim", "policies", "vla", "robots"},
}
ROBOT_SIDE_THIRD_PARTY = {"numpy", "grpc", "grpc_health", "grpc_reflection", "google", "h5py", "PIL"}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (vla.cli.* is the command line), None outside the project."""
    if module == "vla.cli" or module.startswith("vla.cli."):
        return "cli"
    top = module.split(".")[0]
    return top if top in PROJECT else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, wherever it is."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, _imported_from(base, alias.name)) for alias in node.names]
    return found


def _imported_from(base: str, name: str) -> str:
    """The module `from base import name` depends on: base, or base.name when that is the command line
    (`from vla import cli`)."""
    entered_cli = layer_of(base) != "cli" and layer_of(f"{base}.{name}") == "cli"
    return f"{base}.{name}" if entered_cli else base


def library_files() -> list[Path]:
    return sorted(p for top in PROJECT for p in (ROOT / top).rglob("*.py") if "proto" not in p.parts)


def test_every_import_respects_the_layers():
    broken = []
    for path in library_files():
        layer = layer_of(module_name(path))
        for line, imported in imports_of(path):
            target = layer_of(imported)
            if target is not None and target not in MAY_IMPORT[layer]:
                broken.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {imported} ({target})")
    assert not broken, "\n".join(broken)


def test_the_robot_side_needs_no_torch_and_no_simulator():
    import sys

    third_party = set()
    for path in (ROOT / "robots").rglob("*.py"):
        if "proto" in path.parts:
            continue
        for _, imported in imports_of(path):
            top = imported.split(".")[0]
            if layer_of(imported) is None and top not in sys.stdlib_module_names:
                third_party.add(top)
    assert third_party <= ROBOT_SIDE_THIRD_PARTY, third_party - ROBOT_SIDE_THIRD_PARTY


@pytest.mark.parametrize("source, expected", [
    ("import sim.env", "sim.env"), ("from vla.cli.types import PORT", "vla.cli.types"),
    ("from vla import cli", "vla.cli"), ("from vla.cli import main", "vla.cli"), ("def f():\n    from policies import server", "policies"),
])
def test_imports_are_read_wherever_they_are(tmp_path, source, expected, monkeypatch):
    path = ROOT / "vla" / "_probe_for_test_layers.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert [name for _, name in imports_of(path)] == [expected]


def test_a_broken_layer_is_caught(monkeypatch):
    """vla/ importing sim/ (what vla/data.py used to do) fails the layer test."""
    real = imports_of

    def with_sim(path):
        found = real(path)
        return found + [(1, "sim.tasks")] if path.name == "data.py" and path.parent.name == "vla" else found

    monkeypatch.setattr(f"{__name__}.imports_of", with_sim)
    with pytest.raises(AssertionError, match=r"vla/data.py:1 \(vla\) imports sim.tasks \(sim\)"):
        test_every_import_respects_the_layers()
