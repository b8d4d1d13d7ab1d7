"""Bad ONNX files: truncated, not ONNX at all, tensors whose declared size disagrees with their data,
cycles, dangling inputs, missing or escaping external data, unsupported operators. Each is a typed
nnlite error naming the file (and the tensor or node); never a traceback from deep inside. A seeded
fuzz run mutates a small valid model and requires nnlite errors only, fast and with bounded memory."""

from __future__ import annotations

import signal
import sys
import time
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnlite.onnx
from nnlite.errors import GraphFormatError, NnliteError, UnsupportedOpError


def small_model(external: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4 * 4 * 4, 5)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[1, 1],
                              pads=[0, 0, 1, 1]),
             helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def save(m, path, **kw):
    onnx.save_model(m, path, **kw)
    return path


def test_small_model_loads_and_runs(tmp_path):
    import onnxruntime
    path = save(small_model(), tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (want,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(nnlite.onnx.load(path).run({"x": x})[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    data = small_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(GraphFormatError, match="cut.onnx"):
        nnlite.onnx.load(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"hello world", b"\x08"])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(GraphFormatError, match="bad.onnx"):
        nnlite.onnx.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GraphFormatError, match="nope.onnx"):
        nnlite.onnx.load(tmp_path / "nope.onnx")
    with pytest.raises(GraphFormatError, match="directory"):
        nnlite.onnx.load(tmp_path)


def test_tensor_size_disagrees_with_its_data(tmp_path):
    m = small_model()
    m.graph.initializer[0].dims[0] = 5  # declares (5, 3, 3, 3), holds (4, 3, 3, 3)
    with pytest.raises(GraphFormatError, match=r"m\.onnx: initializer 'w' declares shape \[5, 3, 3, 3\]"):
        nnlite.onnx.load(save(m, tmp_path / "m.onnx"))


def test_cycle_names_the_nodes(tmp_path):
    m = small_model()
    m.graph.node[1].input[0] = "f"  # relu reads the reshape, which (through pool) reads relu
    with pytest.raises(GraphFormatError, match=r"m\.onnx: the graph has a cycle through node\(s\) 'relu'"):
        nnlite.onnx.load(save(m, tmp_path / "m.onnx"))


def test_dangling_input_names_the_node(tmp_path):
    m = small_model()
    m.graph.node[2].input[0] = "ghost"
    with pytest.raises(GraphFormatError, match=r"node 'pool' \(MaxPool\) reads 'ghost'"):
        nnlite.onnx.load(save(m, tmp_path / "m.onnx"))


def test_node_that_cannot_run_on_its_shapes_is_named_at_load(tmp_path):
    m = small_model()
    m.graph.initializer[2].CopyFrom(numpy_helper.from_array(np.zeros((7, 5), np.float32), "fc"))
    with pytest.raises(GraphFormatError, match=r"m\.onnx: node 'fc' \(MatMul\)"):
        nnlite.onnx.load(save(m, tmp_path / "m.onnx"))


def test_unsupported_ops_are_listed_with_counts(tmp_path):
    m = small_model()
    for name in ("a", "b"):
        m.graph.node.append(helper.make_node("NonMaxSuppression", ["y"], [name]))
    m.graph.node.append(helper.make_node("Einsum", ["y"], ["e"], equation="ij->ji"))
    with pytest.raises(UnsupportedOpError, match=r"unsupported ONNX operators: Einsum \(1\), NonMaxSuppression \(2\)"):
        nnlite.onnx.load(save(m, tmp_path / "m.onnx"))


def test_external_data_is_read_and_confined_to_the_models_folder(tmp_path):
    path = save(small_model(), tmp_path / "ext.onnx", save_as_external_data=True, location="ext.onnx.data",
                size_threshold=0)
    x = np.ones((1, 3, 8, 8), np.float32)
    want = nnlite.onnx.load(save(small_model(), tmp_path / "plain.onnx")).run({"x": x})[0]
    np.testing.assert_array_equal(nnlite.onnx.load(path).run({"x": x})[0], want)
    data = (tmp_path / "ext.onnx.data").read_bytes()
    (tmp_path / "ext.onnx.data").write_bytes(data[:100])
    with pytest.raises(GraphFormatError,
                       match=r"ext\.onnx: initializer '\w+': external file ext\.onnx\.data holds 100"):
        nnlite.onnx.load(path)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(GraphFormatError, match=r"ext\.onnx: initializer 'w': cannot read external data"):
        nnlite.onnx.load(path)
    m = onnx.load(path, load_external_data=False)
    for entry in m.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../secret.bin"
    (tmp_path.parent / "secret.bin").write_bytes(data)
    with pytest.raises(GraphFormatError, match="outside the model's folder"):
        nnlite.onnx.load(save(m, tmp_path / "escape.onnx"))


def test_import_does_not_load_onnx_packages():
    import subprocess
    code = "import nnlite.onnx, sys; print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _Timeout(Exception):
    pass


def _mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:       # flip bytes
        for _ in range(rng.integers(1, 8)):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
    elif kind == 1:     # truncate
        b = b[:rng.integers(1, len(b))]
    elif kind == 2:     # overwrite a byte with a large varint-looking value
        b[rng.integers(len(b))] = int(rng.choice([0x7F, 0xFF, 0x80, 0x00, 0x08, 0x12]))
    elif kind == 3:     # duplicate a slice somewhere else
        i, j = sorted(rng.integers(len(b), size=2))
        k = rng.integers(len(b))
        b[k:k] = b[i:j][:64]
    else:               # delete a slice
        i = rng.integers(len(b))
        del b[i:i + int(rng.integers(1, 16))]
    return bytes(b)


def fuzz(tmp_path, cases: int, seed: int) -> dict:
    data = small_model().SerializeToString()
    rng = np.random.default_rng(seed)
    x = np.ones((1, 3, 8, 8), np.float32)
    path = tmp_path / "fuzz.onnx"
    outcome = {"loaded": 0, "rejected": 0}

    def alarm(*_):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    tracemalloc.start()
    try:
        for case in range(cases):
            path.write_bytes(_mutate(data, rng))
            tracemalloc.reset_peak()
            start = time.perf_counter()
            signal.alarm(10)
            try:
                m = nnlite.onnx.load(path)
                if [i.shape[1:] for i in m.inputs] == [(3, 8, 8)]:
                    m.run({m.inputs[0].name: x})
                outcome["loaded"] += 1
            except NnliteError:
                outcome["rejected"] += 1
            except _Timeout:
                pytest.fail(f"fuzz case {case} (seed {seed}) did not finish within 10 s")
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"fuzz case {case} (seed {seed}) raised {type(exc).__name__}: {exc}")
            finally:
                signal.alarm(0)
            assert time.perf_counter() - start < 5, f"fuzz case {case} took too long"
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < 200 << 20, f"fuzz case {case} allocated {peak >> 20} MiB"
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    return outcome


@pytest.mark.skipif(sys.platform == "win32", reason="SIGALRM")
def test_fuzzed_files_raise_only_nnlite_errors(tmp_path):
    outcome = fuzz(tmp_path, 300, seed=17)
    assert outcome["rejected"] > 100  # the mutations do damage the file


@pytest.mark.long
def test_fuzzed_files_raise_only_nnlite_errors_long(tmp_path):
    fuzz(tmp_path, 5000, seed=18)
