"""The package's shape: a one-way import graph, and command entry points that know every command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "corpusalign"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, lazy imports inside functions included.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``. The implicit
    import of a parent package (importing ``a.b.c`` runs ``a/b/__init__.py``) is not an edge: a
    package's ``__init__`` that imports its own submodules at call time would otherwise always close
    a loop.
    """
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in paths else base)
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_lazy_import_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "corpusalign"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("def f():\n    from corpusalign.sub import b\n")
    (pkg / "sub" / "a.py").write_text("def g():\n    from corpusalign.sub.b import h\n")
    (pkg / "sub" / "b.py").write_text("from . import a\n\ndef h():\n    pass\n")
    (pkg / "c.py").write_text("import corpusalign.sub.a\n")
    graph = import_graph(pkg)
    assert graph["corpusalign.sub.b"] == {"corpusalign.sub.a"}
    assert graph["corpusalign.sub"] == {"corpusalign.sub.b"}
    assert cycles(graph) == [["corpusalign.sub.a", "corpusalign.sub.b"]]


def test_the_package_import_graph_has_no_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles (lazy imports included): " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("command", ["build", "calibrate", "train", "eval", "validate"])
def test_python_dash_m_cli_knows_every_command(command: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "corpusalign.cli", command, "--help"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "Usage" in run.stdout


def test_the_command_line_imports_with_only_the_core_dependencies() -> None:
    """typer vendors click (0.2x: typer._click), so the core install has no click: the CLI must not need it."""
    code = "import sys; sys.modules['click'] = None; import corpusalign.cli; print('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
