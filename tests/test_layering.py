"""The wings' rules, read from the source (every import, at any depth, function-level ones included):

- nothing under rag/ imports the web layer (api, FastAPI, Starlette, uvicorn) or the evaluation package (eval);
- the modules of rag/ import each other without a cycle;
- rag/ keeps at most six top-level modules beside its packages (corpus, encoding, index, query);
- each wing imports only the wings below it (corpus and encoding at the bottom, then index, then query).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rag.config import PROJECT_ROOT

RAG = PROJECT_ROOT / "rag"
FORBIDDEN = ("api", "eval", "fastapi", "starlette", "uvicorn")
# what each wing may import from the others (the top-level modules config, errors, files are open to all)
MAY_IMPORT = {
    "corpus": set(),
    "encoding": set(),
    "index": {"corpus", "encoding"},
    "query": {"corpus", "encoding", "index"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in `source`, wherever it sits (module level, a
    function, a class, an `if`); relative imports resolved against `module`. `from a import b` names `a.b`
    (b may be a submodule) and `a` both."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def rag_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(RAG.rglob("*.py"))}


def forbidden_imports(source: str, module: str) -> list[str]:
    return sorted({f"{name} (line {line})" for name, line in imports_of(source, module)
                   if name.split(".")[0] in FORBIDDEN})


def test_the_checker_sees_an_import_hidden_in_a_function():
    source = "import numpy\n\ndef later():\n    if True:\n        from api.app import create_app\n        import eval.metrics as m\n"
    assert forbidden_imports(source, "rag.query.x") == ["api.app (line 5)", "api.app.create_app (line 5)", "eval.metrics (line 6)"]
    assert imports_of("from . import verdict\nfrom ..index import store\n", "rag.query.retrieval")[:2] == [
        ("rag.query", 1), ("rag.query.verdict", 1)]


def test_no_module_of_the_library_imports_the_web_layer_or_evaluation():
    bad = {name: found for name, path in rag_modules().items() if (found := forbidden_imports(path.read_text(), name))}
    assert bad == {}


def internal_graph() -> dict[str, set[str]]:
    modules = rag_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {imported for imported, _ in imports_of(path.read_text(), name, path.name == "__init__.py")}
        graph[name] = {t for t in targets if t in modules and t != name and not (modules[t].name == "__init__.py")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_library():
    assert find_cycle(internal_graph()) is None


@pytest.mark.parametrize("wing", sorted(MAY_IMPORT))
def test_each_wing_imports_only_the_wings_below_it(wing):
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in internal_graph().items() if source.startswith(f"rag.{wing}.")
        for target in targets
        if target.count(".") >= 2 and (other := target.split(".")[1]) != wing and other not in MAY_IMPORT[wing]
    )
    assert wrong == []


def test_the_library_has_few_top_level_modules_beside_its_wings():
    modules = sorted(p.name for p in RAG.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.parent.name for p in RAG.glob("*/__init__.py"))
    assert packages == ["corpus", "encoding", "index", "query"]
    assert len(modules) <= 6, modules
