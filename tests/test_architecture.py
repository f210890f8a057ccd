"""The shape of the code: imports point one way without cycles, commands stay thin, modules and
functions stay small, and the README's Python API example runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("syllabus_common", "ingest", "pipeline", "prompts", "syllabus_data")
SHARED = "syllabus_common"  # leaf utilities both ingest/ and pipeline/ may import
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Project module → project modules it imports anywhere in its body (lazy imports count)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.add(full if full in modules else known(base))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_and_a_clean_graph():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_project_modules():
    found = cycles(import_graph())
    assert not found, sorted(sorted(c) for c in found)


def test_layers_point_one_way():
    bad = []
    for module, targets in import_graph().items():
        layer = module.split(".")[0]
        for t in targets:
            if layer == "ingest" and t.startswith("pipeline"):
                bad.append(f"{module} → {t} (ingest/ imports only itself and {SHARED})")
            if layer == SHARED and not t.startswith(SHARED):
                bad.append(f"{module} → {t} ({SHARED} is a leaf)")
            if module.startswith("pipeline.commands.") and (t.startswith("pipeline.commands.") or t == "pipeline.cli"):
                bad.append(f"{module} → {t} (commands import pipeline.ui, not each other or the CLI)")
    assert not bad, "\n".join(sorted(bad))


def _long_functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _is_table(node):
                yield node.name, length


def _is_table(node: ast.AST) -> bool:
    """A function that is mostly one literal (a table of data) may be long."""
    literals = [n for n in ast.walk(node) if isinstance(n, (ast.Dict, ast.List, ast.Tuple, ast.Set))]
    biggest = max((n.end_lineno - n.lineno + 1 for n in literals), default=0)
    return biggest > (node.end_lineno - node.lineno + 1) / 2


def test_modules_and_functions_stay_small():
    too_big = []
    for path in sorted(p for top in (*PACKAGES, "eval", "tests") for p in (ROOT / top).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{rel}: {lines} lines")
        for name, length in _long_functions(ast.parse(text)):
            too_big.append(f"{rel}::{name}: {length} lines")
    assert not too_big, "\n".join(too_big)


DEPRECATED_IMPORTS = {"fitz": "pymupdf"}  # PyMuPDF's old name prints a FutureWarning to the user on import


def test_no_deprecated_module_names_are_imported():
    found = []
    for path in sorted(p for top in (*PACKAGES, "eval", "tests") for p in (ROOT / top).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{path.relative_to(ROOT).as_posix()}:{node.lineno}: {n} (use {DEPRECATED_IMPORTS[n.split('.')[0]]})"
                      for n in names if n.split(".")[0] in DEPRECATED_IMPORTS]
    assert not found, "\n".join(found)


def test_the_size_check_sees_a_long_function_but_not_a_table():
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    assert [n for n, _ in _long_functions(ast.parse(f"def long():\n{body}\n"))] == ["long"]
    table = "\n".join(f"        {i}: 'row'," for i in range(90))
    assert list(_long_functions(ast.parse(f"def table():\n    return {{\n{table}\n    }}\n"))) == []


def test_readme_python_api_example_runs(cfg, embedder, tmp_path, monkeypatch, capsys):
    """The README's example, as printed, against the real knowledge base and estimator; the LLM is a
    fake registered through the real registry (the real one is exercised in test_ask)."""
    from test_llm_support import FakeLLM, fake_backend

    import pipeline.kb.store as store

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "fixtures").symlink_to(ROOT / "tests" / "fixtures")
    (tmp_path / "config.yaml").write_text("llm:\n  backend: fake\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYLLABUS_CONFIG", raising=False)
    original = store.KnowledgeBase.__init__
    monkeypatch.setattr(store.KnowledgeBase, "__init__",  # share the session's embedding model
                        lambda self, c, path=None, embedder_=None, create=False: original(self, c, path, embedder, create))
    with fake_backend(FakeLLM(context=2048)):
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.match(r"added \d+ pages \d+ chunks\n", out), out[:200]
    assert len(re.findall(r", p\. \S+: 0\.\d{4}\n", out)) == 3, out
    assert re.search(r"\[1\] .+, p\. \S+", out), out
    assert re.search(r"QLoRA 7B: \d+\.\d GiB, fits an RTX 4090: (True|False)", out), out


def test_public_api_is_importable_from_the_package_without_loading_models():
    import subprocess
    import sys

    code = ("import sys, pipeline; from pipeline import answer, summarize, transcribe_batch, estimate, plan, "
            "KnowledgeBase; print([m for m in ('torch', 'transformers', 'faiss', 'pymupdf') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["answer", "summarize", "transcribe_batch", "estimate", "plan", "finetune", "KnowledgeBase"])
def test_each_use_case_is_documented(name):
    import pipeline.api as api

    assert getattr(api, name).__doc__, name
