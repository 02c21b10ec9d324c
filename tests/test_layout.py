"""The layout holds: no import cycles in the package (imports inside functions and type-checking
imports count), no upward import (models never import steps, training, evaluation, use cases or
the CLI; steps never import a concrete model), no production import of test support, no module
over ~400 lines without a reason written at its top."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deepsound"
LIMIT = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module → the deepsound modules it imports, at any depth: an import inside a function or an
    ``if TYPE_CHECKING:`` block ties two modules together as much as one at the top does."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_no_import_cycles_even_through_imports_inside_functions():
    graph = _imports()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # a package importing its own submodules (re-exports) is not a cycle between modules
    real = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


# (importing layer, layers it must never import): each layer only looks down
FORBIDDEN = (
    ("deepsound.models", ("deepsound.steps", "deepsound.training", "deepsound.evaluation", "deepsound.cli",
                          "deepsound.usecases", "deepsound.ui", "deepsound.pipeline", "deepsound.registry",
                          "deepsound.config")),
    ("deepsound.steps", ("deepsound.models", "deepsound.cli", "deepsound.ui", "deepsound.usecases")),
    ("deepsound.ui", ("deepsound.cli",)),
    ("deepsound.usecases", ("deepsound.cli", "deepsound.ui")),
)  # fmt: skip


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_upward_imports():
    offenders = []
    for module, targets in _imports().items():
        for layer, banned in FORBIDDEN:
            if _under(module, layer):
                offenders += [
                    f"{module} -> {t}" for t in sorted(targets) if any(_under(t, b) for b in banned)
                ]
    assert not offenders, "imports across the layering: " + "; ".join(offenders)


def test_the_walker_sees_imports_inside_functions_and_type_checking_blocks():
    graph = _imports()
    assert "deepsound.models.mmaudio.generator" in graph["deepsound.registry"]  # inside a factory
    assert "deepsound.interfaces" in graph["deepsound.models.mmaudio.generator"]  # under TYPE_CHECKING


def test_no_production_module_imports_test_support():
    offenders = {
        module: sorted(t for t in targets if t.startswith("deepsound.testing"))
        for module, targets in _imports().items()
        if not module.startswith("deepsound.testing")
    }
    offenders = {m: t for m, t in offenders.items() if t}
    assert not offenders, f"production modules importing test support: {offenders}"


def test_long_modules_say_why():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > LIMIT:
            head = ast.get_docstring(ast.parse(text)) or ""
            if "long because" not in head.lower():
                long.append(f"{path.relative_to(SRC)} ({text.count(chr(10))} lines)")
    assert not long, "modules over ~400 lines without a reason at the top: " + ", ".join(long)
