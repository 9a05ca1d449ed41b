"""The house's rules, read from the source with ast (no torch, no import of fastdrop): modules under 300
lines, functions under 50, no import cycle between modules, and no import from a lower layer to a higher
one (the layers are listed in docs/ARCHITECTURE.md)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "fastdrop"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 50

# Low to high: a module may import its own layer and those below it, never one above.
LAYERS = [
    ["errors", "registry", "files", "memory"],
    ["models", "data", "results", "policies"],
    ["strategies"],
    ["config"],
    ["run", "engine"],
    ["api", "bench", "report", "lightning"],
    ["cli", "__main__"],
]
RANK = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The fastdrop modules `name` imports (at any depth of the file: lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t != "fastdrop":
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_modules_and_functions_are_small():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {n} lines")
    assert not too_long, too_long


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in _modules()} - {""}
    assert rooms <= set(RANK), sorted(rooms - set(RANK))


def test_no_import_goes_up_a_layer():
    up = [f"{m} -> {t}" for m, targets in _graph().items() if _room(m) for t in targets
          if RANK[_room(t)] > RANK[_room(m)]]
    assert not up, up


def test_no_import_cycle():
    graph = _graph()
    # package __init__s re-export their own modules: an edge from a module to its own package's
    # __init__ (or back) is not a cycle between rooms of the design
    edges = {m: {t for t in ts if not (m.startswith(t + ".") or t.startswith(m + "."))} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [m, t]) if t in stack else f"{m} -> {t}")
            elif t not in state:
                visit(t, stack + [m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles
