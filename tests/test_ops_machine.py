"""Blocking sizes come from the machine's caches (sysfs), with overrides, never from constants for one CPU."""

from __future__ import annotations

import pytest

from nnlite.errors import ConfigError
from nnlite.ops import machine


def fake_sysfs(tmp_path, entries):
    for i, (level, kind, size) in enumerate(entries):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return str(tmp_path)


def test_caches_are_read_from_sysfs(tmp_path, monkeypatch):
    monkeypatch.delenv("NNLITE_L2_BYTES", raising=False)
    monkeypatch.delenv("NNLITE_L3_BYTES", raising=False)
    root = fake_sysfs(tmp_path, [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                 (3, "Unified", "105M")])
    assert machine.caches.__wrapped__(root) == machine.Caches(48 << 10, 2 << 20, 105 << 20)


def test_missing_sysfs_gives_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("NNLITE_L2_BYTES", raising=False)
    monkeypatch.delenv("NNLITE_L3_BYTES", raising=False)
    got = machine.caches.__wrapped__(str(tmp_path / "absent"))
    assert got.l2 == machine.DEFAULT_L2 and got.l3 == machine.DEFAULT_L3


def test_environment_overrides_and_rejects_nonsense(tmp_path, monkeypatch):
    root = fake_sysfs(tmp_path, [(2, "Unified", "1024K")])
    monkeypatch.setenv("NNLITE_L2_BYTES", "512K")
    assert machine.caches.__wrapped__(root).l2 == 512 << 10
    monkeypatch.setenv("NNLITE_L2_BYTES", "lots")
    with pytest.raises(ConfigError, match="NNLITE_L2_BYTES"):
        machine.caches.__wrapped__(root)
    monkeypatch.setenv("NNLITE_L2_BYTES", "0")
    with pytest.raises(ConfigError, match="positive"):
        machine.caches.__wrapped__(root)


def test_blocking_scales_with_l2():
    sizes = machine.blocking()
    l2 = machine.caches().l2
    assert sizes.convpool_band == l2 // 4 and sizes.separable_band == l2 * 3 // 16
    assert sizes.fuse_max_weights == l2 // 8 and sizes.im2col_chunk >= 1 << 20
    info = machine.describe()
    assert info["engine"] in ("simd", "blas") and info["llvm_cpu"] and info["blocking"] == sizes._asdict()
