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
    assert "lmprof.record.result" in graph["lmprof.runner"]
    assert "lmprof.record.sections" in graph["lmprof.record.check"]
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
    """The record floor and compare are data: their notebook display is registered from the views (lmprof.display)."""
    graph = import_graph()
    floor = [name for name in graph if name.startswith("lmprof.record.")]
    assert {"lmprof.record.result", "lmprof.record.sections", "lmprof.record.check", "lmprof.record.files",
            "lmprof.record.derived"} <= set(floor)
    for name in (*floor, "lmprof.comparison", "lmprof.display", "lmprof.version", "lmprof.fsutil", "lmprof.phases"):
        assert not [d for d in graph[name] if d.startswith(UPSTAIRS)], name


# The faces: what shows a result (views), what reads a command line (commands, cli) and what talks to a user
# (api, magic, lessons). Every other module is the library beneath them, and never imports a face upstairs.
FACES = ("lmprof.views", "lmprof.commands", "lmprof.cli", "lmprof.api", "lmprof.magic", "lmprof.lessons",
         "lmprof.__main__")
UPSTAIRS = ("lmprof.views", "lmprof.commands", "lmprof.cli")


def upward_arrows(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Module -> the views or commands it imports, for every module below the faces."""
    arrows = {name: sorted(d for d in deps if d.startswith(UPSTAIRS))
              for name, deps in graph.items() if not name.startswith(FACES) and name != "lmprof"}  # the public face
    return {name: deps for name, deps in arrows.items() if deps}


def test_upward_arrows_are_found() -> None:
    graph = {"lmprof.comparison": {"lmprof.views.rows"}, "lmprof.views.compare": {"lmprof.comparison"},
             "lmprof.sweeps.driver": {"lmprof.cli"}}
    assert upward_arrows(graph) == {"lmprof.comparison": ["lmprof.views.rows"], "lmprof.sweeps.driver": ["lmprof.cli"]}


def test_no_module_below_the_faces_imports_a_view_or_a_command() -> None:
    assert upward_arrows(import_graph()) == {}


def test_the_api_does_not_import_the_command_line() -> None:
    graph = import_graph()
    assert not [d for d in graph["lmprof.api"] if d == "lmprof.cli" or d.startswith("lmprof.commands")]


# --- result.json's keys are spelled in the record floor only --------------------------------------------
def scanned_keys() -> dict[str, str]:
    """Key value -> its constant in lmprof.record.sections: the keys of the sections' rows and fields.

    A simple scan, so only keys that cannot be an ordinary word: those with an underscore. Left out: the
    top-level section names (RunResult's attributes, read as result.memory) and RunConfig's field names
    (lmprof.config is their home; sample_every is both).
    """
    import dataclasses

    from lmprof.config import RunConfig
    from lmprof.record import sections
    from lmprof.record.result import RunResult

    own = {f.name for f in dataclasses.fields(RunResult)} | {f.name for f in dataclasses.fields(RunConfig)}
    return {value: name for name, value in vars(sections).items()
            if name.isupper() and isinstance(value, str) and "_" in value and value not in own}


def spelled_keys(source: str, keys: dict[str, str]) -> list[str]:
    """The keys ``source`` spells as a string in its code (an f-string's insides included; docstrings, which
    show a section's shape by example, left out)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return sorted({node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and isinstance(node.value, str) and node.value in keys and id(node) not in docstrings})


def test_a_spelled_key_is_found() -> None:
    keys = scanned_keys()
    source = '''def f(r):
    """'test_ppl' in a docstring is an example."""
    return r["saved_bytes_peak"], f"{r['val_ppl']:.1f}", "val ppl", "saved_bytes_peak_note"
'''
    assert spelled_keys(source, keys) == ["saved_bytes_peak", "val_ppl"]
    assert {"saved_bytes_peak", "train_coverage", "val_ppl", "gflops_per_s"} <= set(keys)


def test_no_result_key_is_spelled_outside_the_record_floor() -> None:
    keys = scanned_keys()
    spelled = {str(path.relative_to(PACKAGE.parent)): found for path in sorted(PACKAGE.rglob("*.py"))
               if path.relative_to(PACKAGE).parts[0] != "record"
               and (found := spelled_keys(path.read_text(encoding="utf-8"), keys))}
    assert spelled == {}, "import the key's constant from lmprof.record.sections instead"
