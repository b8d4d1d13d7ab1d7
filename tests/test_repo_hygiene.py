"""Habits the tree keeps: small files, and docstrings that hold no measured figures or dates."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("nnlite", "tests", "parity_tests", "tools", "benchmarks")
LINE_BUDGET = 400


def python_files():
    for folder in FOLDERS:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_every_python_file_fits_the_line_budget():
    over = [f"{p.relative_to(REPO)}: {n} lines" for p in python_files()
            if (n := len(p.read_text().splitlines())) > LINE_BUDGET]
    assert not over, f"files over {LINE_BUDGET} lines (split them by responsibility): {over}"


DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
FIGURE = re.compile(r"\b\d+(\.\d+)?\s?(ms|GFLOP/s|GB/s)\b")


def test_package_docstrings_hold_no_dates_or_timings():
    """Measured figures and dates belong in benchmarks/RESULTS.md, where the machine is recorded with them."""
    found = []
    for path in sorted((REPO / "nnlite").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                for pattern in (DATE, FIGURE):
                    if (m := pattern.search(doc)):
                        found.append(f"{path.relative_to(REPO)} ({getattr(node, 'name', 'module')}): {m.group(0)!r}")
    assert not found, f"docstrings with dates or timings: {found}"


ISSUE_REFERENCE = re.compile(r"\bissues? #?\d+\b|\(#\d+\)", re.IGNORECASE)
PROCESS_WORDS = re.compile(r"^test_(qa|issue|round|regression|fix|session)\w*\.py$")


def test_code_and_tests_stand_on_their_own():
    """Package and test files are named by subject and never point at an issue tracker: a reader of the
    checkout has nothing but the checkout."""
    found = [f"{p.relative_to(REPO)}:{i}" for folder in ("nnlite", "tests", "parity_tests")
             for p in sorted((REPO / folder).rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if ISSUE_REFERENCE.search(line)]
    assert not found, f"references to issue numbers: {found}"
    named = [p.name for folder in ("tests", "parity_tests") for p in (REPO / folder).glob("test_*.py")
             if PROCESS_WORDS.match(p.name)]
    assert not named, f"test files named after a process, not a subject: {named}"


def test_ruff_finds_nothing():
    """The lint configured in pyproject.toml (pyflakes, bugbear, pyupgrade, import order, complexity) passes."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
