"""The code's shape: no module imports another in a circle (lazy, in-function imports count too), no engine
module imports Gradio, and no file grows past the size a newcomer reads in one sitting."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "grpo_app"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The package's modules that `name` imports, anywhere in the file (TYPE_CHECKING blocks too)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & set(modules)
            out |= subs or ({target} & set(modules))
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names} & set(modules)
    return out - {name}


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}

    def reaches(start: str, goal: str, seen: set) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_the_engine_never_imports_gradio_and_files_stay_small():
    for name, path in _modules().items():
        text = path.read_text()
        if ".ui" not in name:
            assert "import gradio" not in text, name
        assert len(text.splitlines()) <= 500, f"{name} has {len(text.splitlines())} lines: split it"
