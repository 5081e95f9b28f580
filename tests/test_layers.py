"""The package's imports point one way (docs/architecture.md): every module imports only modules
of its own layer or of layers before it."""

from __future__ import annotations

import ast
from pathlib import Path

import edgewalk

PACKAGE = Path(edgewalk.__file__).parent
LAYERS = [
    ["errors", "checks", "memory", "statistics"],
    ["graph", "alias", "policy", "lumping", "history"],
    ["_numba_kernel", "_numba_leap", "kernels", "result", "engine", "leap"],
    ["_gth", "exact"],
    ["planning", "targets"],
    ["training"],
    ["transformer"],
    ["study", "batch.config", "batch.units"],
    ["io"],
    ["batch.runner", "batch"],
    ["analysis", "plots"],
    ["cli", "__init__"],
]


def layer_of(module: str) -> int:
    """The layer of a dotted module name inside the package (its longest listed prefix)."""
    best, found = -1, None
    for number, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), number
    assert found is not None, f"module {module} is in no layer of docs/architecture.md"
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(module: str, path: Path) -> set[str]:
    """Package modules that ``module`` imports (relative imports resolved)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("edgewalk"):
                target = node.module.removeprefix("edgewalk").lstrip(".")
            else:
                continue
            names = [target] if target else []
            for alias in node.names:  # `from . import engine` imports a module
                candidate = f"{target}.{alias.name}" if target else alias.name
                if candidate in modules():
                    names.append(candidate)
            found.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("edgewalk."):
                    found.add(alias.name.removeprefix("edgewalk."))
    return found


def test_every_module_is_in_a_layer():
    for module in modules():
        layer_of(module)


def test_imports_point_one_way():
    wrong = []
    for module, path in modules().items():
        mine = layer_of(module)
        for other in imported(module, path):
            if other and layer_of(other) > mine:
                wrong.append(f"{module} (layer {mine}) imports {other} (layer {layer_of(other)})")
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_an_upward_import(tmp_path):
    # the checker itself can fail: a model module importing the engine is flagged
    fake = tmp_path / "graph.py"
    fake.write_text("from .engine import execute\n")
    assert "engine" in imported("graph", fake)
    assert layer_of("engine") > layer_of("graph")
