"""No import cycles among the package's modules.

Every module of vccv_gpu is parsed with `ast`; every import it makes of another vccv_gpu module,
at the top or inside a function, is an edge (relative imports resolved; `from package import
name` counts as an import of the submodule when `name` is one). A cycle is a strongly connected
component of more than one module. The parent packages a submodule import runs implicitly are not edges: every package
would otherwise be in a cycle with the submodules its __init__ imports.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = "vccv_gpu"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _modules() -> dict[str, Path]:
    """Module name -> source file, for every .py module of the package tree."""
    found: dict[str, Path] = {}
    todo = [ROOT]
    while todo:
        package = todo.pop()
        directory = _package_dir(package)
        if directory is None:
            continue
        for path in sorted(directory.iterdir()):
            if path.name == "__init__.py":
                found[package] = path
            elif path.suffix == ".py":
                found[f"{package}.{path.stem}"] = path
            elif (path / "__init__.py").is_file():
                todo.append(f"{package}.{path.name}")
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The vccv_gpu modules `name` (at `path`) imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()

    def add(module: str) -> None:
        # the deepest known module: `import vccv_gpu.codec.plan` imports vccv_gpu.codec.plan
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module and module != name:
            out.add(module)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    add(f"{module}.{alias.name}")
                else:
                    add(module)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert {"vccv_gpu.codec.sample", "vccv_gpu.codec.plan", "vccv_gpu.kernels"} <= set(graph)
    assert "vccv_gpu.codec.plan" in graph["vccv_gpu.codec.sample"]
    assert "vccv_gpu.codec.sample" in graph["vccv_gpu.codec.loader"]
    # a lazy import inside a function is an edge too
    assert "vccv_gpu.kernels" in graph["vccv_gpu.codec.residuals"]
    assert "vccv_gpu.kernels.residual.triton" in graph["vccv_gpu.kernels.residual"]
    assert "vccv_gpu.kernels.sam" in graph["vccv_gpu.model.sam"]


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in _cycles(import_graph())]
    assert cycles == [], f"import cycles: {cycles}"


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [{"a", "b", "c"}]
