"""The package's import graph: no cycle between modules of ``minutely``, no module importing
or using another's private names, and the private parts of a library imported only by its
wrapper.

Reads the source with ``ast`` (imports at module level, in functions and under
``TYPE_CHECKING`` alike: a cycle there is still two modules that cannot be read apart). An
edge goes from a module to each module it imports; ``from package import submodule`` is an
edge to the submodule, not to the package's ``__init__``, and no edge is implied from a
module to the packages that hold it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import minutely

ROOT = Path(minutely.__file__).parent

#: the one module allowed to import a library's private parts, per library
WRAPPERS = {
    "nats": "minutely.bus.nats.client",
    "clickhouse_connect": "minutely.store.engine",
}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def modules() -> dict[str, ast.Module]:
    """Every module of the package, by dotted name, parsed."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def imports(name: str, tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    """``(module, names, line)`` for each import in ``tree``; ``names`` is empty for a
    plain ``import module``. Relative imports are resolved against ``name``."""
    package = name if (ROOT / Path(*name.split(".")[1:]) / "__init__.py").exists() else None
    package = package or name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names], node.lineno


def graph(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, tree in trees.items():
        out = edges.setdefault(name, set())
        for module, names, _ in imports(name, tree):
            targets = [f"{module}.{n}" if f"{module}.{n}" in trees else module for n in names]
            out.update(t for t in targets or [module] if t in trees)
        out.discard(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [cycle_in(c, edges) for c in components]


def cycle_in(component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A path ``a -> b -> ... -> a`` inside ``component``."""
    start = min(component)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in edges[path[-1]] if w in component)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_no_module_of_the_package_imports_itself_back() -> None:
    found = cycles(graph(modules()))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def private_imports(trees: dict[str, ast.Module]) -> list[str]:
    """Each import of a private name or module (but a library's, by its wrapper), and each
    use of a private name of a package module through the name it is imported as."""
    bad = []
    for name, tree in trees.items():
        for module, names, line in imports(name, tree):
            private = [p for p in module.split(".") if is_private(p)]
            private += [n for n in names if is_private(n)]
            root = module.split(".")[0]
            if private and (root == "minutely" or WRAPPERS.get(root) != name):
                bad.append(f"{name}:{line} imports {', '.join(private)} from {module}")
        bound = module_names(name, tree, trees)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
            ):
                bad.append(f"{name}:{node.lineno} uses {node.attr} of {bound[node.value.id]}")
    return bad


def module_names(name: str, tree: ast.Module, trees: dict[str, ast.Module]) -> dict[str, str]:
    """The names ``tree`` binds to modules of the package (``import minutely.x as y``,
    ``from minutely import x``), and the module each stands for."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in trees:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            [(module, _, _)] = imports(name, ast.Module([node], []))
            for alias in node.names:
                if f"{module}.{alias.name}" in trees:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    return bound


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = private_imports(modules())
    assert not bad, "private imports:\n" + "\n".join(bad)


def test_the_checks_find_what_they_look_for() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]
    trees = {
        "minutely.x": ast.parse("from minutely.y import f"),
        "minutely.y": ast.parse("def g():\n    from minutely import x"),
        "minutely.z": ast.parse("from . import y"),
    }
    assert graph(trees) == {
        "minutely.x": {"minutely.y"},
        "minutely.y": {"minutely.x"},
        "minutely.z": {"minutely.y"},
    }
    assert private_imports(
        {
            "minutely.bus.nats.client": ast.parse("from nats.aio.client import _CRLF_"),
            "minutely.a": ast.parse("from minutely.b import _helper\nfrom nats._x import y"),
            "minutely.b": ast.parse("from minutely import a as other\nother._state = 1"),
        }
    ) == [
        "minutely.a:1 imports _helper from minutely.b",
        "minutely.a:2 imports _x from nats._x",
        "minutely.b:2 uses _state of minutely.a",
    ]
