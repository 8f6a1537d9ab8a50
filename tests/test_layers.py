"""The package's import structure: no import cycle between its modules, and the layer
contracts of pyproject.toml ([tool.importlinter]) kept. Both read the import graph that
import-linter builds (grimp): every import, function-level and TYPE_CHECKING ones included."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def strongly_connected_components(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import one another."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                components.append(sorted(component))
    return components


def cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each cycle as its modules and the imports (with line numbers) that close it."""
    found = []
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue
        members = set(component)
        edges = []
        for importer in component:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                lines = [
                    d["line_number"]
                    for d in graph.get_import_details(importer=importer, imported=imported)
                ]
                edges.append(f"  {importer} -> {imported} (line {', '.join(map(str, lines))})")
        found.append(" ↔ ".join(component) + "\n" + "\n".join(edges))
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b", line_number=1, line_contents="")
    graph.add_import(importer="p.b", imported="p.c", line_number=2, line_contents="")
    graph.add_import(importer="p.c", imported="p.a", line_number=3, line_contents="")
    graph.add_import(importer="p.d", imported="p.a", line_number=4, line_contents="")
    assert [c.splitlines()[0] for c in cycles(graph)] == ["p.a ↔ p.b ↔ p.c"]
    graph.remove_import(importer="p.c", imported="p.a")
    assert cycles(graph) == []


def test_no_import_cycles() -> None:
    found = cycles(grimp.build_graph("carbongraph"))
    assert not found, f"{len(found)} import cycle(s) in carbongraph:\n" + "\n".join(found)


def test_layer_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_server_and_the_cli_load_without_the_demo_generators() -> None:
    """`carbongraph serve` and `carbongraph import …` never load carbongraph.demo: only the seed
    commands import it, lazily (the contracts check the app; this checks the CLI's laziness)."""
    probe = (
        "import sys, carbongraph.cli, carbongraph.app, carbongraph.accounting.importer, "
        "carbongraph.actions.importer\n"
        "print(sorted(m for m in sys.modules if m.startswith('carbongraph.demo')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_resolvers_take_the_typed_info() -> None:
    """Resolvers and their helpers under schema/ take ``Info`` (resolvers/context.py), whose
    ``info.context`` mypy checks as a Context, or ``HasContext``: not ``strawberry.Info`` nor
    ``Any``. Extension hooks (``next_``, graphql-core's info) are the exception."""
    untyped = re.compile(r"\binfo: (strawberry\.Info\b(?!\[)|Any\b)")
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted((REPO / "src" / "carbongraph" / "schema").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if untyped.search(line) and "next_" not in line
    ]
    assert not found, "\n".join(found)
