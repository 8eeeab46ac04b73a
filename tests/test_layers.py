"""The package's shape: one-way layers, no import cycles, short modules and functions, a light pricing layer.

Every module under ``pte_rl/`` is parsed (``ast``; nothing is imported) and its imports, at module
level, inside functions or under ``if TYPE_CHECKING:``, are edges of a graph. The layers, lowest first::

    errors, paths (and the root package)  <  pricing  <  tools, checkers  <  patterns  <  rollout
        <  rewards  <  training  <  studies  <  tiny  <  cli

A module may import its own layer or the ones below it. The built-in environments (``envs``) may
import any layer below ``training``; no other module imports them (the loader finds them by name).
The engine never imports ``recipes``. Modules stay under 400 lines and functions under 80.

Known violations that their owners are fixing are listed by name below (``KNOWN_*``); an entry that
is no longer a violation fails the test too, so that the lists only shrink.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pte_rl"

LAYERS: dict[str, int] = {
    "": 0, "errors": 0, "paths": 0,
    "pricing": 1,
    "tools": 2, "checkers": 2,
    "patterns": 3,
    "rollout": 4,
    "rewards": 5,
    "training": 6,
    "studies": 7,
    "tiny": 8,
    "cli": 9,
}
ENVS = "envs"
ENVS_BELOW = LAYERS["training"]  # an environment may import any layer strictly below this one
FORBIDDEN_ROOTS = ("recipes",)  # the engine never imports a recipe
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Known violations, each being fixed by the owner of the file now. These lists must end empty.
KNOWN_BAD_EDGES: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = {
    # arith imports its scripted behaviours last and they import arith's items and tools. Both files are
    # hashed into the tiny policy's build key: breaking the cycle rebuilds the default policy.
    frozenset({"pte_rl.envs.arith", "pte_rl.envs._arith_scripts"}),
    # facts follows arith's pattern (the build key of its tiny policy covers both files).
    frozenset({"pte_rl.envs.facts", "pte_rl.envs._facts_scripts"}),
}
KNOWN_LONG_MODULES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()  # "module:qualified.name"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. pte_rl.pricing.cost (a package is its __init__)
    path: Path
    tree: ast.Module
    lines: int
    is_package: bool


def load_modules(root: Path, package: str) -> dict[str, Module]:
    """Every ``.py`` file under ``root/package``, parsed, by dotted module name."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(name, path, ast.parse(text, filename=str(path)), len(text.splitlines()), is_package)
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: Module, known: Iterable[str]) -> set[str]:
    """The modules ``module`` imports anywhere in its body; ``from a import b`` is ``a.b`` when that is a module."""
    known = set(known)
    found = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found


def layer_of(name: str, package: str = PACKAGE) -> str:
    """``pte_rl.pricing.cost`` -> ``pricing``; the root package -> ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def bad_edge(importer: str, imported: str, package: str = PACKAGE) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    if imported.split(".")[0] in FORBIDDEN_ROOTS:
        return "the engine never imports a recipe"
    if imported != package and not imported.startswith(package + "."):
        return None
    source, target = layer_of(importer, package), layer_of(imported, package)
    if target == ENVS:
        return None if source == ENVS else "nothing imports an environment: the loader finds it by name"
    if source == ENVS:
        return None if LAYERS[target] < ENVS_BELOW else f"an environment imports layers below training, not {target}"
    if LAYERS[target] > LAYERS[source]:
        return f"back-edge: {source or 'the root'} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
    return None


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (edges to other packages left out)."""
    return {name: imports_of(module, modules) & set(modules) for name, module in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines from ``def`` to the last line) of every function and method, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", (node.end_lineno or node.lineno) - node.lineno + 1
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules(ROOT, PACKAGE)


def _check_known(kind: str, found: AbstractSet[object], known: AbstractSet[object]) -> None:
    """Fail on violations not in ``known``, and on entries of ``known`` that are no longer violations."""
    new = sorted(map(str, found - known))
    fixed = sorted(map(str, known - found))
    assert not new, f"{kind}:\n  " + "\n  ".join(new)
    assert not fixed, f"{kind}: fixed, remove from the known list in tests/test_layers.py:\n  " + "\n  ".join(fixed)


def test_every_module_is_in_a_layer(modules: dict[str, Module]) -> None:
    assert len(modules) > 50  # the walk found the package
    unplaced = sorted(n for n in modules if layer_of(n) not in LAYERS and layer_of(n) != ENVS)
    assert not unplaced, f"modules outside every layer (add their package to LAYERS): {unplaced}"


def test_no_back_edges(modules: dict[str, Module]) -> None:
    found = {}
    for name, module in modules.items():
        for imported in imports_of(module, modules):
            reason = bad_edge(name, imported)
            if reason:
                found[(name, imported)] = reason
    new = {edge: why for edge, why in found.items() if edge not in KNOWN_BAD_EDGES}
    assert not new, "imports against the layers:\n  " + "\n  ".join(
        f"{a} -> {b}: {why}" for (a, b), why in sorted(new.items())
    )
    _check_known("bad edges", set(found), KNOWN_BAD_EDGES)


def test_no_import_cycles(modules: dict[str, Module]) -> None:
    found = set(cycles(import_graph(modules)))
    _check_known("import cycles", found, KNOWN_CYCLES)


def test_modules_are_short(modules: dict[str, Module]) -> None:
    found = {n for n, m in modules.items() if m.lines > MAX_MODULE_LINES}
    detail = sorted(f"{n} ({modules[n].lines} lines)" for n in found - KNOWN_LONG_MODULES)
    assert not detail, f"modules over {MAX_MODULE_LINES} lines: {detail}"
    _check_known(f"modules over {MAX_MODULE_LINES} lines", found, KNOWN_LONG_MODULES)


def test_functions_are_short(modules: dict[str, Module]) -> None:
    lengths = {f"{n}:{f}": lines for n, m in modules.items() for f, lines in functions(m.tree)}
    found = {key for key, lines in lengths.items() if lines > MAX_FUNCTION_LINES}
    detail = sorted(f"{key} ({lengths[key]} lines)" for key in found - KNOWN_LONG_FUNCTIONS)
    assert not detail, f"functions over {MAX_FUNCTION_LINES} lines: {detail}"
    _check_known(f"functions over {MAX_FUNCTION_LINES} lines", found, KNOWN_LONG_FUNCTIONS)


def test_pricing_loads_without_torch_or_trl() -> None:
    code = (
        "import json, sys\n"
        "import pte_rl.pricing.cost, pte_rl.pricing.gamma, pte_rl.pricing.jsonl\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trl'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(result.stdout) == []


# ------------------------------------------------------------- the checks themselves, on a made-up tree


def _tree(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_modules(root, PACKAGE)


def test_checks_catch_back_edges_cycles_and_relative_imports(tmp_path: Path) -> None:
    modules = _tree(tmp_path, {
        "pte_rl/__init__.py": "",
        "pte_rl/pricing/__init__.py": "",
        "pte_rl/pricing/cost.py": "def f():\n    from pte_rl.rollout import loop\n",  # lazy, still a back-edge
        "pte_rl/rollout/__init__.py": "",
        "pte_rl/rollout/loop.py": "from . import env\nfrom ..pricing.cost import f\n",
        "pte_rl/rollout/env.py": "import pte_rl.rollout.loop\nfrom pte_rl.envs import arith\n",
        "pte_rl/envs/__init__.py": "",
        "pte_rl/envs/arith.py": "from pte_rl.rewards import base\nfrom pte_rl.tools import x\nimport recipes.grpo\n",
    })
    graph = import_graph(modules)
    assert graph["pte_rl.rollout.loop"] == {"pte_rl.rollout.env", "pte_rl.pricing.cost"}
    assert graph["pte_rl.pricing.cost"] == {"pte_rl.rollout.loop"}
    assert set(cycles(graph)) == {frozenset({"pte_rl.pricing.cost", "pte_rl.rollout.loop", "pte_rl.rollout.env"})}
    edges = {(a, b): bad_edge(a, b) for a in modules for b in imports_of(modules[a], modules)}
    bad = {edge for edge, why in edges.items() if why}
    assert bad == {
        ("pte_rl.pricing.cost", "pte_rl.rollout.loop"),  # pricing (1) -> rollout (4)
        ("pte_rl.rollout.env", "pte_rl.envs.arith"),  # environments are found by name only
        ("pte_rl.envs.arith", "recipes.grpo"),  # the engine never imports a recipe
    }  # envs.arith -> rewards (5, below training) and -> tools are allowed
    assert bad_edge("pte_rl.envs.arith", "pte_rl.training.trainer") is not None
    assert bad_edge("pte_rl.cli.score", "pte_rl.pricing.cost") is None
    assert bad_edge("pte_rl.tools.x", "pte_rl.checkers.y") is None  # one layer
    assert bad_edge("pte_rl.errors", "json") is None


def test_checks_measure_functions(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    modules = _tree(tmp_path, {
        "pte_rl/__init__.py": "",
        "pte_rl/m.py": (
            f"class C:\n    def short(self):\n        pass\n\n\ndef long():\n{body}\n    def inner():\n        pass\n"
        ),
    })
    assert dict(functions(modules["pte_rl.m"].tree)) == {"C.short": 2, "long": 83, "long.inner": 2}
    assert modules["pte_rl.m"].lines == 88
