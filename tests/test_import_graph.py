"""The package has no import cycle: every module imports alone in a fresh
interpreter, and no chain of imports (function-level ones included) leads
from a module back to itself."""
import ast
import importlib.util
import pathlib
import subprocess
import sys

import pytest

# The cylstm under test: the checkout's, or an installed wheel's when the
# tests run from a copy of tests/ (cibuildwheel).
PACKAGE = pathlib.Path(importlib.util.find_spec("cylstm").submodule_search_locations[0])
ROOT = PACKAGE.parent


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# Compiled kernels are modules too: importing them is importing a leaf.
MODULES.update({_module_name(p.parent / p.name.split(".")[0]): p
                for ext in ("*.pyx",) for p in PACKAGE.rglob(ext)})


def _is_type_checking(node):
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name, path):
    """The cylstm modules `name` imports anywhere in its body (functions
    included); ``if TYPE_CHECKING:`` blocks never run and are skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cylstm":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] +
                                  ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cylstm":
                pass
            else:
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    # `from pkg import module` imports the submodule; `from
                    # module import name` imports the module.
                    found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return {m for m in found if m in MODULES}


def _graph():
    return {name: _imports(name, path) for name, path in MODULES.items()
            if path.suffix == ".py"}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def test_the_graph_sees_imports_at_every_level():
    graph = _graph()
    # A top-level, a relative and a function-level import are all seen.
    assert "cylstm.layers" in graph["cylstm"]
    assert "cylstm.models" in graph["cylstm"]
    assert graph["cylstm.models"], "models imports other cylstm modules"


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert cycles == [], f"import cycles (function-level imports counted): {cycles}"


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(m for m, p in MODULES.items()
                                          if p.suffix == ".py" and not m.endswith("__main__")))
def test_each_module_imports_alone(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    if result.returncode and 'pip install "cylstm[' in result.stderr:
        pytest.skip(f"{module} needs an optional extra: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-2000:]
