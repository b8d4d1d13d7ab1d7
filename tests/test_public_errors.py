"""Bad arguments to the public API raise nnlite's own errors, each naming what was wrong; never a bare
ValueError, TypeError or NumPy traceback. A static check keeps raw built-in exceptions out of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from nnlite import boxes, ops
from nnlite.errors import ConfigError, ModelError, NnliteError, ShapeError, WeightsError
from nnlite.graph import GraphBuilder

PACKAGE = Path(__file__).resolve().parents[1] / "nnlite"
X = np.zeros((1, 4, 4, 2), np.float32)


def relu_model():
    g = GraphBuilder("tiny")
    return g.build([g.layer("relu", "r", g.input("input", (4, 4, 2)))])


BAD_CALLS = {
    "text instead of an image tensor": (lambda: ops.conv2d("abc", kernel=np.zeros((1, 1, 2, 2))), ShapeError,
                                        "conv2d: expected input as an array of numbers"),
    "a ragged list": (lambda: ops.relu([[1.0, 2.0], [3.0]]), ShapeError, "relu: expected input as an array"),
    "softmax axis out of range": (lambda: ops.softmax(X, axis=4), ModelError, "softmax: axis 4"),
    "mean axis out of range": (lambda: ops.mean(X, axis=(1, 7)), ModelError, r"mean: axis \(1, 7\)"),
    "concat axis out of range": (lambda: ops.concat(X, X, axis=-5), ModelError, "concat: axis -5"),
    "reshape to text": (lambda: ops.reshape(X, shape="ab"), ShapeError, "reshape: cannot reshape"),
    "leaky_relu alpha not a number": (lambda: ops.leaky_relu(X, alpha="x"), ModelError, "alpha to be a number"),
    "bias_add on a scalar": (lambda: ops.bias_add(1.0, [1.0]), ShapeError, "bias_add: expected input with at"),
    "nms boxes of text": (lambda: boxes.nms("abc", [1.0], iou_threshold=0.5), ShapeError, "nms: expected an array"),
    "nms threshold of text": (lambda: boxes.nms(np.zeros((1, 4)), [1.0], iou_threshold="0.5"), ConfigError,
                              "nms iou_threshold"),
    "nms negative max_results": (lambda: boxes.nms(np.zeros((1, 4)), [1.0], iou_threshold=0.5, max_results=-1),
                                 ConfigError, "nms max_results"),
    "graph input shape of text": (lambda: GraphBuilder("g").input("image", "abc"), ModelError,
                                  "g: input 'image': expected a shape"),
    "graph input negative size": (lambda: GraphBuilder("g").input("image", (4, -1, 3)), ModelError,
                                  "expected a shape"),
    "summary input_shape of text": (lambda: relu_model().summary(input_shape="abc"), ShapeError,
                                    "tiny: input_shape for 'input'"),
    "first_divergence tolerance of text": (lambda: relu_model().first_divergence({}, X, tolerance="1e-4"),
                                           ConfigError, "tolerance must be a number"),
    "model input of text": (lambda: relu_model()(np.full((1, 4, 4, 2), "a")), ShapeError,
                            "input 'input' should hold numbers"),
    "model input ragged": (lambda: relu_model()([[1.0], [2.0, 3.0]]), ShapeError, "input 'input' is not an array"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_a_bad_argument_raises_a_typed_error_naming_it(case):
    call, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=message):
        call()


def test_a_model_loader_given_a_file_of_another_kind_names_the_file(tmp_path):
    from nnlite.models.imagenet import mobilenet_v2, xception
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not weights at all" * 4)
    for loader in (mobilenet_v2.load_model, xception.load_model):
        with pytest.raises(WeightsError, match="junk.bin"):
            loader(junk)


def test_configuration_errors_stay_value_errors_for_older_callers():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, NnliteError)


# Built-in exceptions the package must not raise itself (user-facing problems get an nnlite error type).
# AttributeError (the attribute protocol) and NotImplementedError (abstract methods) are not on this list.
RAW = {"ValueError", "TypeError", "KeyError", "IndexError", "LookupError", "RuntimeError", "Exception",
       "AssertionError", "ArithmeticError", "ZeroDivisionError", "OSError"}
# path -> the raw exceptions it may still raise, and why
ALLOWED: dict[str, tuple[set[str], str]] = {}   # none today; an entry needs a reason


def raw_raises(source: str) -> list[tuple[int, str]]:
    """(line, name) of each ``raise Name(...)`` / ``raise Name`` of a built-in in RAW, and each assert."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert):
            found.append((node.lineno, "assert"))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in RAW:
                found.append((node.lineno, target.id))
    return sorted(found)


def test_the_package_raises_no_raw_builtin_exceptions():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        allowed = ALLOWED.get(rel, (set(), ""))[0]
        found += [f"{rel}:{line} {name}" for line, name in raw_raises(path.read_text()) if name not in allowed]
    assert not found, f"raise an nnlite error type (nnlite/errors.py) instead: {found}"


def test_the_allow_list_names_files_that_still_need_it():
    stale = [rel for rel, (names, _) in ALLOWED.items()
             if not {n for _, n in raw_raises((PACKAGE / rel).read_text())} & names]
    assert not stale, f"these files no longer raise what ALLOWED lets them; drop them from it: {stale}"


def test_the_static_check_sees_raises_and_asserts():
    source = "def f(x):\n    assert x\n    raise ValueError('x')\n\ndef g():\n    raise TypeError\n" \
             "\ndef h():\n    raise ShapeError('fine')\n"
    assert raw_raises(source) == [(2, "assert"), (3, "ValueError"), (6, "TypeError")]
