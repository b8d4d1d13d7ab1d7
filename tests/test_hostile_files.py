"""Hand-built hostile files (tests/hostile_files.py): each loader refuses them quickly with a typed
nnlite error, without the memory they ask for, and the CLI reports each in one line with exit 2."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnlite.cli import main as cli_main
from nnlite.errors import GraphFormatError, WeightsError
from nnlite.io import (
    load_keras_h5,
    load_npz,
    load_pickled_arrays,
    load_tfjs,
    load_torch_pth,
)
from nnlite.savedmodel import load as load_graph
from tests import hostile_files as hf

HOSTILE = hf.HOSTILE
ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "nnlite" / "data" / "samples" / "chelsea.png"

CASES = [  # file, loader, error type, what the message says
    ("self_list.pkl", load_pickled_arrays, WeightsError, "container inside itself"),
    ("dag_2_60.pkl", load_pickled_arrays, WeightsError, "shared containers reached by many paths"),
    ("huge_memo.pkl", load_pickled_arrays, WeightsError, "memo index 174000000"),
    ("stride0.pth", load_torch_pth, WeightsError, "6,400,000,000 bytes from 4 stored bytes"),
    ("declares_16gb.npz", load_npz, WeightsError, "17,179,869,184 bytes"),
    ("method99.npz", load_npz, WeightsError, "compression method 99"),
    ("tfjs_parent/model-weights_manifest.json", load_tfjs, WeightsError, "relative name inside"),
    ("tfjs_absolute/model-weights_manifest.json", load_tfjs, WeightsError, "relative name inside"),
    ("tfjs_huge_dim/model-weights_manifest.json", load_tfjs, WeightsError, "non-negative ints"),
    ("tfjs_wraps_to_zero/model-weights_manifest.json", load_tfjs, WeightsError, "18446744073709551616 bytes"),
    ("self_calling.pb", load_graph, GraphFormatError, "recursive call f -> f"),
    ("const_splat.pb", load_graph, GraphFormatError, "10,000,000,000 bytes"),
    ("const_without_value.pb", load_graph, GraphFormatError, "no 'value' attribute"),
    ("const_port7.pb", load_graph, GraphFormatError, "c:7"),
    ("bad_tensor_name.pb", load_graph, GraphFormatError, "'i:abc'"),
    ("map_as_varint.pb", load_graph, GraphFormatError, "map field 'attr'"),
]


def test_committed_fixtures_match_their_builders():
    for name, build in hf.SMALL.items():
        assert (HOSTILE / name).read_bytes() == build(), name


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("name, loader, error, message", CASES, ids=[c[0].split("/")[0] for c in CASES])
def test_hostile_file_is_a_quick_typed_error(name, loader, error, message):
    before, start = _peak_rss(), time.perf_counter()
    with pytest.raises(error, match=None) as info:
        loader(HOSTILE / name)
    assert message in str(info.value)
    assert str(HOSTILE / name) in str(info.value) or name.split("/")[0] in str(info.value)
    assert time.perf_counter() - start < 5
    assert _peak_rss() - before < 200 << 20


def test_twenty_thousand_nested_messages(tmp_path):
    assert hf.nested_protobuf(30) == hf._nested_protobuf_slow(30)
    path = tmp_path / "nested.pb"
    path.write_bytes(hf.nested_protobuf(20_000))
    with pytest.raises(GraphFormatError, match="nested more than 100 deep"):
        load_graph(path)


def test_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    """96 MiB of zeros in about 100 KB; with the cap at 16 MiB it is refused from its headers alone (the
    default 4 GiB cap works the same way on a 23 MB file that inflates to tens of GB)."""
    path = tmp_path / "bomb.npz"
    path.write_bytes(hf.npz_bomb(96 << 20))
    assert path.stat().st_size < 1 << 20
    monkeypatch.setenv("NNLITE_MAX_EXPAND_BYTES", str(16 << 20))
    before = _peak_rss()
    with pytest.raises(WeightsError, match="exceeds the limit .* NNLITE_MAX_EXPAND_BYTES"):
        load_npz(path)
    assert _peak_rss() - before < 16 << 20
    monkeypatch.setenv("NNLITE_MAX_EXPAND_BYTES", str(128 << 20))  # raised cap: the same file loads
    assert load_npz(path)["bomb"].size == 96 << 20


def test_zip_member_inflating_past_its_declared_size(tmp_path):
    data = bytearray(hf.npz_bomb(1 << 20))
    path = tmp_path / "liar.npz"
    # the central directory is what zipfile trusts: make it declare half the real size
    at = data.find(b"PK\x01\x02")
    zip64 = data.find(b"\x01\x00", at + 46)  # zip64 extra field: uncompressed size first
    real = int.from_bytes(data[zip64 + 4:zip64 + 12], "little")
    data[zip64 + 4:zip64 + 12] = (real // 2).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        load_npz(path)


def test_tfjs_shard_symlink_out_of_the_folder(tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\x00" * 8)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").symlink_to(outside)
    (folder / "m.json").write_bytes(hf.tfjs_manifest(["w.bin"]))
    with pytest.raises(WeightsError, match="leads out of the manifest's folder"):
        load_tfjs(folder / "m.json")


def test_hdf5_that_loops_inside_the_library(monkeypatch):
    """One changed byte makes HDF5 loop while reading an attribute; the reader gives up at the deadline and
    leaves no process behind."""
    monkeypatch.setenv("NNLITE_HDF5_TIMEOUT", "2")
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="gave up after 2 s"):
        load_keras_h5(HOSTILE / "attribute_loop.h5")
    assert time.perf_counter() - start < 8
    assert not _children(os.getpid())


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # runs in the guard's child: getpid() is the child's


def test_hdf5_guard_reports_a_crashing_reader():
    from nnlite.io._guard import run_guarded
    with pytest.raises(WeightsError, match="stopped unexpectedly .signal 9"):
        run_guarded(_die, timeout=5, error=WeightsError, what="x")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# ---------------------------------------------------------------------------------------- through the CLI

def _cli(capsys, argv) -> tuple[int, list[str]]:
    code = cli_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("fixture, model, target", [
    ("self_list.pkl", "squeezenet1_1", "imagenet/squeezenet_weights.pkl"),
    ("dag_2_60.pkl", "squeezenet1_1", "imagenet/squeezenet_weights.pkl"),
    ("huge_memo.pkl", "squeezenet1_1", "imagenet/squeezenet_weights.pkl"),
    ("stride0.pth", "mobilenet_v2", "imagenet/mobilenet_v2-b0353104.pth"),
])
def test_cli_bundled_weights_replaced_by_hostile_files(tmp_path, monkeypatch, capsys, fixture, model, target):
    weights = tmp_path / "weights"
    (weights / target).parent.mkdir(parents=True)
    shutil.copy(HOSTILE / fixture, weights / target)
    monkeypatch.setenv("NNLITE_WEIGHTS", str(weights))
    code, err = _cli(capsys, ["classify", "--model", model, str(IMAGE)])
    assert code == 2 and len(err) == 1 and err[0].startswith("nnlite classify: error: "), err


def test_cli_keras_h5_that_loops(tmp_path, monkeypatch, capsys):
    (tmp_path / "models").mkdir()
    shutil.copy(HOSTILE / "attribute_loop.h5", tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path))
    monkeypatch.setenv("NNLITE_HDF5_TIMEOUT", "1")
    code, err = _cli(capsys, ["classify", "--model", "resnet50", str(IMAGE)])
    assert code == 2 and len(err) == 1 and err[0].startswith("nnlite classify: error: "), err


@pytest.mark.parametrize("fixture", [c[0] for c in CASES if c[0].endswith(".pb")] + ["nested"])
def test_cli_savedmodel_hostile_graphs(tmp_path, capsys, fixture):
    path = HOSTILE / fixture
    if fixture == "nested":
        path = tmp_path / "nested.pb"
        path.write_bytes(hf.nested_protobuf(20_000))
    code, err = _cli(capsys, ["savedmodel", str(path)])
    assert code == 2 and len(err) == 1 and err[0].startswith("nnlite savedmodel: error: "), err


def test_ctrl_c_stops_a_load_stuck_inside_hdf5(tmp_path):
    """SIGINT while the HDF5 reader loops: the CLI exits 130 at once with one line, its reader killed."""
    (tmp_path / "models").mkdir()
    shutil.copy(HOSTILE / "attribute_loop.h5", tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    env = {**os.environ, "NNLITE_HOME": str(tmp_path), "NNLITE_HDF5_TIMEOUT": "120", "PYTHONPATH": str(ROOT)}
    # Ctrl-C as a terminal delivers it: a library an earlier test used may have left SIGINT ignored in this
    # process, and a child inherits an ignored signal (its Python then never raises KeyboardInterrupt); a
    # handler is reset to the default across exec
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "nnlite", "classify", "--model", "resnet50", str(IMAGE)],
                                env=env, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)
    reader = None
    try:
        deadline = time.monotonic() + 60
        while not _children(proc.pid):  # wait for the HDF5 reader to start
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        reader = _children(proc.pid)[0]
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 5
    finally:
        for pid in _children(proc.pid) + ([reader] if reader else []):  # never leave a looping reader behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["nnlite classify: interrupted"]
    time.sleep(0.2)
    assert not Path(f"/proc/{reader}").exists() or "Z" in Path(f"/proc/{reader}/stat").read_text().split()[2]


def test_hdf5_dataset_never_written(tmp_path):
    """A 3.6 KB-class file: a gzip dataset declared (40000, 40000) float32 whose chunks were never written;
    h5py would return 6.4 GB of fill values."""
    import h5py
    path = tmp_path / "unwritten.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        group = f.create_group("dense")
        group.attrs["weight_names"] = [b"dense/kernel:0"]
        group.create_dataset("dense/kernel:0", shape=(40000, 40000), dtype="f4", chunks=(100, 100),
                             compression="gzip")
    assert path.stat().st_size < 16 << 10
    with pytest.raises(WeightsError, match="never written"):
        load_keras_h5(path)


def test_hdf5_empty_vars_name(tmp_path):
    import h5py
    import numpy as np
    path = tmp_path / "m.weights.h5"
    with h5py.File(path, "w") as f:
        vars_group = f.create_group("layers/dense/vars")
        vars_group.attrs["name"] = np.array([], dtype="S1")
        vars_group["0"] = np.ones(3, np.float32)
    assert list(load_keras_h5(path)) == ["layers/dense"]  # no stored name: the group's path names it


def test_state_dict_containing_itself(tmp_path):
    """A zip .pth whose state dict holds itself under a key: a WeightsError, not a RecursionError."""
    import io
    import zipfile
    state = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00ah\x01s."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("m/data.pkl", state)
    path = tmp_path / "self.pth"
    path.write_bytes(buf.getvalue())
    with pytest.raises(WeightsError, match="container inside itself"):
        load_torch_pth(path)
