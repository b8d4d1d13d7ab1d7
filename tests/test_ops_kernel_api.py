"""The kernels' internal contract: every kernel has a naive twin, twins are test oracles only, and the unrolled
microkernels are exactly what their template generates."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlite import ops
from nnlite.errors import ShapeError
from nnlite.ops import reference
from tests.closeness import assert_within_rounding, term_scale

PACKAGE = Path(ops.__file__).resolve().parents[1]


def test_every_kernel_has_a_naive_twin_of_the_same_name():
    missing = [name for name in ops.KERNELS if not callable(getattr(reference, name, None))]
    assert not missing, f"kernels without a twin in nnlite.ops.reference: {missing}"


def _imports_reference(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            if module.endswith("reference") and ("ops" in module or node.level) or "reference" in names and (
                    module.endswith("ops") or (node.level and module == "")):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name.endswith("ops.reference") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_production_code_never_uses_the_twins():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "ops" / "reference.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}" for line in _imports_reference(tree)]
    assert not offenders, f"production modules import nnlite.ops.reference: {offenders}"


def test_the_generated_microkernels_are_up_to_date():
    from tools import gen_microkernels
    targets = [(gen_microkernels.TARGET, gen_microkernels.source())] + [
        (path, gen_microkernels.depthwise_source(size)) for size, path in gen_microkernels.DEPTHWISE_TARGETS.items()]
    for target, text in targets:
        assert target.read_text() == text, (
            f"nnlite/ops/{target.name} differs from its template: run python -m tools.gen_microkernels")


def test_tiles_run_without_reference_counting():
    """Helpers and inlined tiles compile without Numba's reference counts: with them each call counted its
    arrays in and out through the runtime, and a loop of tiles saved every vector register around each one."""
    import numba

    from nnlite.ops import depthwise_stream, depthwise_tiles3, microkernels, panels, tiles
    from tests.fresh_kernels import fresh
    for fn in (panels.panel_tiles_whole, panels.panel_tiles_chunked, tiles.finish, depthwise_stream._rows3,
               microkernels.gemm_tile_8x32, microkernels.gemm_tile_6x16, microkernels.gemm_part_6x16,
               depthwise_tiles3.dwconv3_tile_8x16_s1, depthwise_tiles3.dwconv3_tile_8x16_s1_loads):
        assert fn.targetoptions.get("_nrt") is False, fn
    f, i = numba.types.float32[::1], numba.types.int64[::1]
    args = (f, numba.int64, i, i, f, numba.int64, numba.int64, f, numba.int64, numba.float32, f, *[numba.int64] * 5)
    for panel in (panels.panel_tiles_whole, panels.panel_tiles_chunked):
        compiled = fresh(panel)   # compiled here, not loaded from the disk cache
        compiled.compile(args)
        assert "NRT_incref" not in compiled.inspect_asm(args)


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTS = st.sampled_from([None, "relu", "relu6", "leaky_relu", "sigmoid", "swish"])


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(3, 14), st.integers(3, 14), st.integers(1, 40),
       st.integers(1, 40), st.sampled_from([1, 3, 5]), st.integers(1, 2), st.sampled_from(["valid", "same"]),
       ACTS, ACTS)
def test_fused_depthwise_pointwise_against_its_composed_twin(seed, n, h, w, cin, cout, k, stride, padding, dact,
                                                              act):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    dk, db = rng.standard_normal((k, k, cin, 1)).astype(np.float32), rng.standard_normal(cin).astype(np.float32)
    pk = rng.standard_normal((1, 1, cin, cout)).astype(np.float32)
    pb = rng.standard_normal(cout).astype(np.float32)
    kwargs = dict(stride=stride, padding=padding, depthwise_activation=dact, activation=act, alpha=0.1,
                  depthwise_alpha=0.3)
    if padding == "valid" and k > min(h, w):  # nothing to convolve: covered by the shape-error tests
        return
    assert_within_rounding(ops.depthwise_pointwise(x, dk, db, pk, pb, **kwargs),
                           reference.depthwise_pointwise(x, dk, db, pk, pb, **kwargs),
                           term_scale(reference.depthwise_pointwise, x, dk, db, pk, pb, **kwargs))


@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(4, 16), st.integers(4, 16), st.integers(1, 9),
       st.integers(1, 40), st.sampled_from([1, 3]), st.integers(1, 2), st.sampled_from(["valid", "same"]),
       st.integers(2, 3), st.sampled_from([None, 1, 2]), st.sampled_from(["valid", "same"]), ACTS)
def test_fused_conv_max_pool_against_its_composed_twin(seed, n, h, w, cin, cout, k, stride, padding, pool,
                                                       pool_stride, pool_padding, act):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    kwargs = dict(stride=stride, padding=padding, activation=act, alpha=0.1, pool_size=pool,
                  pool_stride=pool_stride, pool_padding=pool_padding)
    try:
        want = reference.conv2d_max_pool(x, kernel, bias, **kwargs)
    except ShapeError:  # a draw the pool cannot take (window larger than the map): both must refuse it
        with pytest.raises(ShapeError):
            ops.conv2d_max_pool(x, kernel, bias, **kwargs)
        return
    assert_within_rounding(ops.conv2d_max_pool(x, kernel, bias, **kwargs), want,
                           term_scale(reference.conv2d_max_pool, x, kernel, bias, **kwargs))



@FAST
@given(st.integers(0, 2**31), st.integers(1, 2), st.integers(4, 16), st.integers(4, 16), st.integers(1, 40),
       st.integers(1, 40), st.sampled_from([1, 3, 5]), st.integers(1, 2), st.sampled_from(["valid", "same"]),
       st.integers(2, 3), st.sampled_from([None, 1, 2]), st.sampled_from(["valid", "same"]), ACTS)
def test_fused_separable_max_pool_against_its_composed_twin(seed, n, h, w, cin, cout, k, stride, padding, pool,
                                                           pool_stride, pool_padding, act):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    dk = rng.standard_normal((k, k, cin, 1)).astype(np.float32)
    pk = rng.standard_normal((1, 1, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    kwargs = dict(stride=stride, padding=padding, activation=act, alpha=0.1, pool_size=pool,
                  pool_stride=pool_stride, pool_padding=pool_padding)
    try:
        want = reference.separable_max_pool(x, dk, pk, bias, **kwargs)
    except ShapeError:  # a draw the conv or the pool cannot take (window larger than the map): both refuse it
        with pytest.raises(ShapeError):
            ops.separable_max_pool(x, dk, pk, bias, **kwargs)
        return
    assert_within_rounding(ops.separable_max_pool(x, dk, pk, bias, **kwargs), want,
                           term_scale(reference.separable_max_pool, x, dk, pk, bias, **kwargs))

SPECIALISATIONS_PROBE = r"""
import gc, numpy as np
import nnlite
from numba.core.registry import CPUDispatcher
from nnlite.graph import GraphBuilder
nnlite.load("mobilenet_v2").model(np.zeros((1, 224, 224, 3), np.float32))
rng = np.random.default_rng(0)
g = GraphBuilder("probe")
x = g.input("x", (21, 21, 3))
y = g.layer("conv2d", "c", x, kernel=rng.standard_normal((3, 3, 3, 16)).astype(np.float32), activation="swish")
y = g.layer("max_pool2d", "p", y, pool_size=2, stride=2, padding="same")
y = g.layer("separable_conv2d", "s", y, depthwise_kernel=rng.standard_normal((3, 3, 16, 1)).astype(np.float32),
            pointwise_kernel=rng.standard_normal((1, 1, 16, 40)).astype(np.float32), activation="sigmoid",
            padding="same")
g.build([y])(rng.standard_normal((2, 21, 21, 3)).astype(np.float32))
for obj in gc.get_objects():
    # drivers._run, the one parallel driver, has one specialisation per kernel it runs: it is not a kernel
    if (isinstance(obj, CPUDispatcher) and obj.py_func.__module__.startswith("nnlite") and len(obj.signatures) > 1
            and obj.py_func.__qualname__ != "_run"):
        print(obj.py_func.__module__ + "." + obj.py_func.__name__, obj.signatures)
"""


def test_each_kernel_is_compiled_once_for_a_model_run():
    """Every Numba kernel a model run reaches is compiled for one signature: a literal argument, an omitted
    default or a read-only array would each compile (and cold-start) a second copy."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", SPECIALISATIONS_PROBE], capture_output=True, text=True, timeout=600,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"kernels compiled more than once:\n{out.stdout}"
