"""The import rules of ARCHITECTURE.md, checked on the source: siblings never import each other, the shared
layer knows no method, nothing in the library imports the demo, the scripts or the command line, the methods
keep no command-line code, and there are no circles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_ada"
SCRIPTS = PACKAGE.parent / "scripts"  # installed as hf_ada/scripts (see hf_ada/scripts/__init__.py)
METHODS = ("optim", "adanns", "adanpc")
#: the rooms that may import every method: the command line, the launcher, the scripts, the demo
FRONT_ROOMS = ("cli", "run", "commands", "scripts", "demo")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every hf_ada module ``path`` imports (at module level or inside functions), ``TYPE_CHECKING`` blocks
    excluded; ``from .x import y`` counts as importing ``.x`` (and ``.x.y`` if that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "hf_ada")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "hf_ada":
                found.add(target)
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file() or (
                        PACKAGE.parent / candidate.replace(".", "/")).is_dir():
                        found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


SOURCES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
SOURCES.update({f"hf_ada.scripts.{p.stem}": p for p in sorted(SCRIPTS.glob("*.py"))})
GRAPH = {name: _imports(path) for name, path in SOURCES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "facade"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _room(m) in METHODS + ("common",)))
def test_methods_and_the_shared_layer_import_only_what_they_may(module):
    room = _room(module)
    allowed = {"common"} | ({room} if room in METHODS else set())
    bad = sorted(target for target in GRAPH[module] if _room(target) not in allowed)
    assert not bad, f"{module} ({room}) imports {bad}; see ARCHITECTURE.md"


def test_only_the_command_line_imports_the_web_interface():
    """``hf_ada/ui`` (the Gradio app) may import every method, like the demo; only it and the ``hf-ada``
    command (``hf_ada/cli.py``, ``hf_ada/commands/``) import it."""
    bad = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                 if _room(t) == "ui" and _room(m) not in ("ui", "cli", "commands"))
    assert not bad, f"only the command line may import hf_ada.ui: {bad}"


def test_nothing_below_the_command_line_imports_it():
    """``hf_ada/commands/`` (every subcommand's arguments) may import every method; no method, the shared
    layer, the demo or the facade imports it, the scripts and the launcher doors excepted."""
    bad = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                 if _room(t) == "commands" and _room(m) not in ("commands", "cli", "run", "scripts", "ui"))
    assert not bad, f"only the command line's doors may import hf_ada.commands: {bad}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _room(m) in METHODS + ("common", "demo")))
def test_the_methods_keep_no_command_line_code(module):
    """Argument parsing lives in hf_ada/commands/ only (one door per action)."""
    tree = ast.parse(SOURCES[module].read_text(encoding="utf-8"))
    parses = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              and any(a.name == "argparse" for a in n.names) or (isinstance(n, ast.ImportFrom) and n.module == "argparse")]
    assert not parses, f"{module} imports argparse: command-line code belongs in hf_ada/commands/"
    assert not SOURCES[module].name == "cli.py", f"{module}: command-line code belongs in hf_ada/commands/"


def test_every_script_is_a_door_to_the_commands():
    """The scripts of ./scripts import hf_ada.commands for their arguments and errors (nothing else parses)."""
    for name in (m for m in GRAPH if _room(m) == "scripts" and m != "hf_ada.scripts"):
        assert any(_room(t) == "commands" for t in GRAPH[name]), f"{name} does not use hf_ada.commands"


def test_no_import_circles():
    """Strongly connected components of the import graph (Tarjan): every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            connect(node)
    # a package's __init__ and its own submodules are not a circle worth reporting (lazy exports)
    real = [c for c in circles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not real, f"import circles: {real}"


def test_the_checker_sees_a_violation(tmp_path):
    """The rule test above can fail: a sibling import is found in a synthetic module."""
    fake = tmp_path / "probe.py"
    fake.write_text("from ..optim import Adan\nimport hf_ada.adanpc.vote\n")
    assert _imports(fake, module="hf_ada.adanns.probe") >= {"hf_ada.optim", "hf_ada.adanpc.vote"}


def test_import_hf_ada_stays_light():
    """``import hf_ada`` registers everything but loads no faiss, sentence-transformers, pipelines,
    matplotlib or gradio (they load on first use)."""
    code = ("import sys, hf_ada; heavy = ('faiss', 'sentence_transformers', 'transformers.pipelines', "
            "'matplotlib', 'sklearn', 'transformers.trainer', 'gradio'); print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
