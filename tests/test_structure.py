"""The house's shape: lmprof's imports point one way, and reference/ imports nothing above it.

Every import statement counts, wherever it stands (module level, inside a
function, under TYPE_CHECKING): a lazy import still ties the two modules
together, and a circle of them is a knot someone must untie before moving a
file. The bare package ``lmprof`` (its public face) is left out: it only
forwards names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lmprof

PACKAGE = Path(lmprof.__file__).parent
# What the program under study may import: its own modules and the floor below it.
REFERENCE_FLOOR = ("lmprof.reference", "lmprof.phases", "lmprof.config", "lmprof.errors", "lmprof.fsutil")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (``from a import b`` counts as a.b when b is a module)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m not in (name, "lmprof")}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (first module repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path being walked, then "done"

    def walk(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":  # on the current path: the walk came round
                here = path + [module]
                return here[here.index(dependency):] + [dependency]
            if dependency not in state:
                cycle = walk(dependency, path + [module])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = walk(module, [])
            if cycle:
                return cycle
    return None


def test_the_graph_is_read_from_the_package() -> None:
    graph = import_graph()
    assert "lmprof.runner" in set().union(*(deps for name, deps in graph.items() if name.startswith("lmprof.commands")))
    assert "lmprof.phases" in graph["lmprof.reference.loop"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_reference_imports_nothing_above_it() -> None:
    above = {name: sorted(d for d in deps if not d.startswith(REFERENCE_FLOOR))
             for name, deps in import_graph().items() if name.startswith("lmprof.reference")}
    assert not any(above.values()), {name: deps for name, deps in above.items() if deps}


def test_the_data_floor_imports_no_view() -> None:
    """result.py and compare.py are data: their notebook display is registered from the views (lmprof.display)."""
    graph = import_graph()
    for name in ("lmprof.record.result", "lmprof.display", "lmprof.version", "lmprof.fsutil", "lmprof.phases"):
        assert not [d for d in graph[name] if d.startswith(("lmprof.views", "lmprof.commands"))], name
