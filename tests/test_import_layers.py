"""Imports only point down the layer order written in ARCHITECTURE.md.

Every module of the package is parsed (nothing is imported); each ``import nnlite...`` /
``from ..x import y`` anywhere in it, inside functions too, is an edge from the module's top-level
part (``ops``, ``graph``, ``models``, ...) to the imported one's. An edge to a higher layer fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nnlite"
ROOT = "__init__"   # the package root, nnlite/__init__.py (nnlite.load and the error types)


def layer_order(text: str) -> dict[str, int]:
    """``layer N  part part ...`` lines of ARCHITECTURE.md's import-layers block -> {part: N}."""
    block = re.search(r"<!-- import-layers -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no <!-- import-layers --> block"
    order = {}
    for line in block.group(1).splitlines():
        m = re.match(r"layer (\d+)\s+(.*?)\s*(#.*)?$", line.strip())
        if m:
            for part in m.group(2).split():
                order[part] = int(m.group(1))
    return order


def part_of(module: str) -> str:
    """nnlite.models.imagenet.resnet50 -> models; nnlite -> the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every nnlite import in ``source``, at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "nnlite"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "nnlite":
                continue
            if node.module is None and target == "nnlite":   # from .. import x: x may be a module
                found += [(node.lineno, f"nnlite.{a.name}" if (PACKAGE / a.name).exists()
                           or (PACKAGE / f"{a.name}.py").exists() else "nnlite") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def upward_imports(order: dict[str, int]) -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        src = part_of(module)
        if src not in order:
            problems.append(f"{path.relative_to(REPO)}: part {src!r} has no layer in ARCHITECTURE.md")
            continue
        for line, target in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            dst = part_of(target)
            if dst not in order:
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {target}, whose part {dst!r} has no layer")
            elif order[dst] > order[src]:
                problems.append(f"{path.relative_to(REPO)}:{line}: {src} (layer {order[src]}) imports {target} "
                                f"(layer {order[dst]})")
    return problems


def test_no_import_points_up_the_layer_order():
    order = layer_order((REPO / "ARCHITECTURE.md").read_text())
    assert {"ops", "graph", "models", "vision", "library", "cli", "web", ROOT} <= set(order)
    assert order["ops"] < order["graph"] < order["models"] < order["vision"] < order["library"] < order["cli"]
    problems = upward_imports(order)
    assert not problems, "imports that point up the layer order:\n" + "\n".join(problems)


def test_the_checker_sees_relative_absolute_and_function_level_imports():
    source = ("from ...vision import classify\n"
              "def f():\n"
              "    import nnlite.cli.main\n"
              "    from ... import library\n")
    found = imported_modules(source, "nnlite.models.imagenet.x", is_package=False)
    assert [part_of(m) for _, m in found] == ["vision", "cli", "library"]
    assert [part_of(m) for _, m in imported_modules("from . import ops\n", "nnlite", True)] == ["ops"]
