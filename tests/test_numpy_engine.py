"""The NumPy engine (nnlite.ops.numpy_engine): each layer kind against the float64 twins of nnlite.ops.reference
and the compiled kernels, whole models against the compiled engine, and the one-image commands without Numba."""

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nnlite
from nnlite import ops
from nnlite.errors import ConfigError, ShapeError
from nnlite.ops import engine, numpy_engine, reference

from .conftest import REPO

RNG = np.random.default_rng(29)
CONVS = [  # (H, W, cin, kh, kw, stride, dilation, padding)
    (9, 11, 3, 3, 3, 1, 1, "same"), (10, 7, 5, 3, 3, 2, 1, "same"), (12, 12, 4, 5, 5, 2, 1, "valid"),
    (8, 9, 6, 1, 1, 1, 1, "valid"), (8, 9, 6, 1, 1, 2, 1, "same"), (11, 13, 2, 3, 3, 1, 2, (1, 2, 0, 3)),
    (7, 7, 3, 7, 7, 2, 1, "same"), (6, 10, 4, 3, 1, (2, 1), 1, "same"),
]


def _close(ours, ref, tol=2e-6):
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.linalg.norm(ours - ref) <= tol * max(np.linalg.norm(ref), 1e-30)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_every_function_has_the_compiled_kernels_name_and_signature():
    for name, fn in numpy_engine.KERNELS.items():
        assert inspect.signature(fn) == inspect.signature(getattr(ops, name)), name


@pytest.mark.parametrize("geometry", CONVS)
@pytest.mark.parametrize("activation", [None, "relu6", "swish"])
def test_conv2d_against_the_twin(geometry, activation):
    h, w, cin, kh, kw, stride, dilation, padding = geometry
    x, k, b = _x(2, h, w, cin), _x(kh, kw, cin, 4), _x(4)
    args = dict(stride=stride, dilation=dilation, padding=padding, activation=activation)
    _close(numpy_engine.conv2d(x, k, b, **args), reference.conv2d(x, k, b, **args))


@pytest.mark.parametrize("geometry", CONVS)
@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_and_separable_against_the_twins(geometry, mult):
    h, w, cin, kh, kw, stride, dilation, padding = geometry
    x, k, b, pw, pb = _x(1, h, w, cin), _x(kh, kw, cin, mult), _x(cin * mult), _x(1, 1, cin * mult, 3), _x(3)
    args = dict(stride=stride, dilation=dilation, padding=padding)
    _close(numpy_engine.depthwise_conv2d(x, k, b, activation="relu", **args),
           reference.depthwise_conv2d(x, k, b, activation="relu", **args))
    _close(numpy_engine.separable_conv2d(x, k, pw, pb, **args), reference.separable_conv2d(x, k, pw, pb, **args))


@pytest.mark.parametrize("pool", [(2, 2, "valid"), (3, 2, "same"), (3, 1, "same"), ((3, 2), (1, 2), "valid")])
def test_pools_against_the_twins(pool):
    size, stride, padding = pool
    x = _x(2, 9, 8, 5)
    for name in ("max_pool2d", "avg_pool2d"):
        _close(getattr(numpy_engine, name)(x, pool_size=size, stride=stride, padding=padding),
               getattr(reference, name)(x, pool_size=size, stride=stride, padding=padding))
    for keep in (False, True):
        _close(numpy_engine.global_avg_pool2d(x, keepdims=keep), reference.global_avg_pool2d(x, keepdims=keep))


def test_elementwise_and_shape_layers_against_the_twins():
    x, y, v = _x(2, 4, 5, 3), _x(2, 4, 5, 3), _x(3)
    for name in ("relu", "relu6", "sigmoid", "swish"):
        _close(getattr(numpy_engine, name)(x * 5), getattr(reference, name)(x * 5))
    _close(numpy_engine.leaky_relu(x, alpha=0.1), reference.leaky_relu(x, alpha=0.1))
    _close(numpy_engine.softmax(x * 30, axis=1), reference.softmax(x * 30, axis=1))
    _close(numpy_engine.add(x, y, v, activation="relu"), reference.add(x, y, v, activation="relu"))
    _close(numpy_engine.add(x), reference.add(x))
    _close(numpy_engine.multiply(x, y[:, :1, :1]), reference.multiply(x, y[:, :1, :1]))
    _close(numpy_engine.concat(x, y, axis=2), reference.concat(x, y, axis=2))
    _close(numpy_engine.mean(x, axis=(1, 2), keepdims=True), reference.mean(x, axis=(1, 2), keepdims=True))
    _close(numpy_engine.zero_pad2d(x, padding=(1, 0, 2, 3)), reference.zero_pad2d(x, padding=(1, 0, 2, 3)))
    _close(numpy_engine.crop2d(x, cropping=(1, 0, 2, 1)), reference.crop2d(x, cropping=(1, 0, 2, 1)))
    _close(numpy_engine.flatten(x), reference.flatten(x))
    _close(numpy_engine.reshape(x, shape=(20, 3)), reference.reshape(x, shape=(20, 3)))
    k, b = _x(3, 6), _x(6)
    _close(numpy_engine.dense(x, k, b, activation="relu"), reference.dense(x, k, b, activation="relu"))


@pytest.mark.parametrize("rules", [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("size", [(7, 9), (3, 2), (16, 5)])
def test_resizes_match_the_compiled_kernel_bit_for_bit(rules, size):
    half, corners = rules
    x = _x(2, 6, 8, 3)
    args = dict(size=size, half_pixel_centers=half, align_corners=corners)
    np.testing.assert_array_equal(numpy_engine.resize_bilinear(x, **args), ops.resize_bilinear(x, **args))
    _close(numpy_engine.resize_bilinear(x, **args), reference.resize_bilinear(x, **args), tol=1e-6)
    np.testing.assert_array_equal(numpy_engine.resize_nearest(x, **args), reference.resize_nearest(x, **args))


def test_bad_arguments_are_the_kernels_errors():
    with pytest.raises(ShapeError, match="conv2d"):
        numpy_engine.conv2d(_x(1, 5, 5, 3), _x(3, 3, 4, 2))
    with pytest.raises(ShapeError, match="4-D"):
        numpy_engine.depthwise_conv2d(_x(5, 5, 3), _x(3, 3, 3, 1))
    with pytest.raises(ShapeError, match="crop2d"):
        numpy_engine.crop2d(_x(1, 3, 3, 1), cropping=(2, 1, 0, 0))


@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet1_1", "face_landmark_68_tiny", "age_gender"])
def test_bundled_models_agree_with_the_compiled_engine(name):
    model = nnlite.load(name)
    model = getattr(model, "model", model)
    shape = next(iter(model.input_specs.values())).shape
    x = RNG.random((2, *shape), np.float32)
    compiled = model(x)
    with engine.use("numpy"):
        ours, traced = model(x), model.trace(x)
    for a, b in zip(*(o if isinstance(o, tuple) else (o,) for o in (ours, compiled))):
        _close(a, b, tol=5e-6)
    assert set(traced) >= {layer.name for layer in model.layers}


def test_an_unknown_engine_name_is_a_config_error(monkeypatch):
    monkeypatch.setenv("NNLITE_GEMM", "numpyy")
    with pytest.raises(ConfigError, match="'numpy'"):
        engine.choose()


def _child(code: str, env: dict | None = None) -> str:
    inherited = {k: v for k, v in os.environ.items() if k not in ("NNLITE_GEMM", "OPENBLAS_NUM_THREADS")}  # as a shell
    env = {**inherited, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


ONE_IMAGE = """
import json, sys
from nnlite.cli import main
rc = main(sys.argv[1:])
from nnlite.ops import engine, threads   # after: imported first, nnlite.ops would set BLAS's thread count itself
print(json.dumps({"rc": rc, "numba": "numba" in sys.modules, "engine": engine._current,
                  "blas": threads.blas_num_threads() in (1, None)}))   # NumPy was loaded before nnlite.ops
"""


def _cli_child(*argv: str, env: dict | None = None) -> tuple[list[str], dict]:
    code = ONE_IMAGE.replace("sys.argv[1:]", repr(list(argv)))
    out = _child(code, env).strip().splitlines()
    return out[:-1], json.loads(out[-1])


SAMPLES = REPO / "nnlite" / "data" / "samples"


def test_one_image_commands_run_without_numba_and_print_what_the_compiled_engine_prints():
    """The printed lines (scores to 4 decimals, boxes to pixels), not the JSON: its 6 decimals show float32
    rounding, in which the engines may differ."""
    for argv in (["classify", str(SAMPLES / "chelsea.png")], ["faces", str(SAMPLES / "faces.jpg")],
                 ["compare", str(SAMPLES / "chelsea.png"), str(SAMPLES / "faces.jpg")]):
        lines, state = _cli_child(*argv)
        assert state == {"rc": 0, "numba": False, "engine": "numpy", "blas": True}, argv
        compiled, compiled_state = _cli_child(*argv, env={"NNLITE_GEMM": "simd"})
        assert compiled_state == {"rc": 0, "numba": True, "engine": "simd", "blas": True}
        assert lines == compiled and lines, argv


def test_three_images_run_on_the_compiled_kernels():
    lines, state = _cli_child("classify", *[str(SAMPLES / n) for n in ("chelsea.png", "coffee.png", "faces.jpg")])
    assert state["numba"] and state["engine"] != "numpy" and state["rc"] == 0
    assert any("Egyptian_cat" in line for line in lines)


def test_the_arcface_recogniser_and_a_set_engine_keep_the_compiled_kernels(monkeypatch):
    from nnlite.cli import _one_shot, build_parser
    from nnlite.ops import precompile
    monkeypatch.setattr(engine, "_current", None)
    monkeypatch.setitem(precompile._state, "one_shot", False)   # _one_shot marks this process: undone after
    args = build_parser().parse_args(["faces", "x.jpg", "--recognizer", "arcface", "--arcface-model", "m.onnx"])
    assert _one_shot(args) is not None and engine._current is None
    monkeypatch.setenv("NNLITE_GEMM", "blas")
    assert _one_shot(build_parser().parse_args(["classify", "x.jpg"])) is not None and engine._current is None
    monkeypatch.delenv("NNLITE_GEMM")
    assert _one_shot(build_parser().parse_args(["compare", "a.jpg", "b.jpg"])) is None and engine._current == "numpy"


def test_building_a_model_loads_no_compiled_code_until_a_kernel_is_used():
    out = _child("""
import sys
from nnlite import ops
from nnlite.models import registry
model = registry.build("mobilenet_v2")   # nnlite.load would also look the kernels up in the cache
before = "numba" in sys.modules
layer = next(layer for layer in model.layers if layer.op == "conv2d")
print(before, layer.fn is ops.conv2d, "numba" in sys.modules)
""")
    assert out.split() == ["False", "True", "True"]
