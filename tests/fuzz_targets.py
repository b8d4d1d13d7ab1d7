"""What the loader fuzz test (tests/fuzz_harness.py) feeds each loader: the *targets* (one loader each,
with one or more valid seed inputs and the files mutations may touch), how a case is loaded, and
:func:`mutate`, which turns case ``i`` of target ``T`` into files, drawing from ``random.Random(f"{T}:{i}")``
so any case can be rebuilt alone. The ``_selftest`` target misbehaves on purpose to test the harness."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.fuzz_mutations import FIELD, GENERIC, flip

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "data" / "fuzz_seeds"


# ---------------------------------------------------------------------------------------- seeds

def _npz_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(0)
    arrays = {"conv/kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
              "conv/bias": np.arange(4, dtype=np.int64), "fortran": np.asfortranarray(np.ones((3, 2)))}
    out = []
    for save in (np.savez, np.savez_compressed):
        buf = io.BytesIO()
        save(buf, **arrays)
        out.append({"w.npz": buf.getvalue()})
    return out


def _tfjs_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    quant = rng.integers(0, 255, size=(4,), dtype=np.uint8)
    half = rng.normal(size=(2, 2)).astype(np.float16)
    manifest = [
        {"paths": ["group1-shard1of1.bin"],
         "weights": [{"name": "conv/filters", "shape": [3, 3, 3, 4], "dtype": "float32"},
                     {"name": "conv/bias", "shape": [4], "dtype": "float32",
                      "quantization": {"dtype": "uint8", "scale": 0.01, "min": -1.2}}]},
        {"paths": ["group2-shard1of1.bin"],
         "weights": [{"name": "fc/weights", "shape": [2, 2], "dtype": "float32",
                      "quantization": {"dtype": "float16"}},
                     {"name": "fc/count", "shape": [], "dtype": "int32"}]},
    ]
    return [{"model-weights_manifest.json": json.dumps(manifest).encode(),
             "group1-shard1of1.bin": kernel.tobytes() + quant.tobytes(),
             "group2-shard1of1.bin": half.tobytes() + np.int32(7).tobytes()}]


def _pickle_seeds() -> list[dict[str, bytes]]:
    rng = np.random.default_rng(2)
    weights = {"conv1": [rng.normal(size=(3, 3, 3, 4)).astype(np.float32), np.zeros(4, np.float32)],
               "fire2/squeeze": [rng.normal(size=(1, 1, 4, 2)).astype(np.float32), np.ones(2, np.float32)]}
    return [{"w.pkl": pickle.dumps(weights, protocol=p)} for p in (2, 5)]


def _read_seed(*names: str) -> dict[str, bytes]:
    return {name: (SEEDS / name).read_bytes() for name in names}


def _frozen_seeds() -> list[dict[str, bytes]]:
    from tests.test_savedmodel import conv_graph, switch_graph
    return [{"graph.pb": conv_graph()}, {"graph.pb": switch_graph("PlaceholderWithDefault")}]


def _savedmodel_seed() -> dict[str, bytes]:
    names = ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"]
    return {name: (SEEDS / "savedmodel" / name).read_bytes() for name in names}


@dataclass(frozen=True)
class Target:
    name: str
    seeds: object                # () -> list of {relative path: bytes}
    mutable: tuple[str, ...]     # which files of a seed mutations may touch (suffix match)
    kind: str                    # drives field-aware mutations: zip, json, pickle, h5, protobuf, raw


def load_case(target: str, folder: Path) -> None:
    """Run the loader of ``target`` on the files in ``folder``."""
    if target in ("npz", "pth_zip", "pth_legacy", "pickle", "keras_h5", "tfjs"):
        from nnlite.io import load_weights
        path = next(p for p in sorted(folder.iterdir()) if p.suffix in (".npz", ".pth", ".pkl", ".h5", ".json"))
        load_weights(path)
    elif target in ("savedmodel", "frozen_pb"):
        from nnlite.savedmodel import load
        model = load(folder if target == "savedmodel" else folder / "graph.pb")
        model.operations(functions=True)
    elif target == "_selftest":  # the harness's own test: each case misbehaves as its file says
        action = (folder / "case.txt").read_text()
        if action == "raise":
            raise ValueError("an untyped error")
        if action == "hang":
            time.sleep(3600)
        if action == "exit":
            os._exit(3)
        if action == "alloc":
            np.ones(128 << 17)  # 128 MiB, every page written
        if action == "typed":
            from nnlite.errors import WeightsError
            raise WeightsError("a typed error")
    elif target == "bundle":
        from nnlite.savedmodel.bundle import TensorBundle
        bundle = TensorBundle(folder / "variables" / "variables")
        for key in bundle.keys():
            bundle.read(key)
    else:
        raise ValueError(target)


def _selftest_seeds() -> list[dict[str, bytes]]:
    return [{"case.txt": b"ok"}]


SELFTEST_ACTIONS = {3: "raise", 5: "hang", 7: "exit", 8: "typed", 9: "alloc"}


TARGETS = {t.name: t for t in [
    Target("npz", _npz_seeds, (".npz",), "zip"),
    Target("tfjs", _tfjs_seeds, (".json", ".bin"), "json"),
    Target("pth_zip", lambda: [_read_seed("tiny.pth")], (".pth",), "zip"),
    Target("pth_legacy", lambda: [_read_seed("tiny_legacy.pth")], (".pth",), "pickle"),
    Target("pickle", _pickle_seeds, (".pkl",), "pickle"),
    Target("keras_h5", lambda: [_read_seed(n) for n in ("keras_legacy_weights.h5", "keras_legacy_model.h5",
                                                        "keras3.weights.h5")], (".h5",), "h5"),
    Target("savedmodel", lambda: [_savedmodel_seed()], (".pb", ".index", ".data-00000-of-00001"), "protobuf"),
    Target("frozen_pb", _frozen_seeds, (".pb",), "protobuf"),
    Target("bundle", lambda: [_savedmodel_seed()], (".index", ".data-00000-of-00001"), "protobuf"),
]}
SELFTEST = Target("_selftest", _selftest_seeds, (".txt",), "raw")


# ---------------------------------------------------------------------------------------- mutations

def mutate(target: Target, seeds: list[dict[str, bytes]], index: int) -> tuple[dict[str, bytes], str]:
    """Case ``index`` of ``target``: a seed with one file mutated, and a short description."""
    if target is SELFTEST:
        return {"case.txt": SELFTEST_ACTIONS.get(index, "ok").encode()}, SELFTEST_ACTIONS.get(index, "ok")
    rng = random.Random(f"{target.name}:{index}")
    files = dict(rng.choice(seeds))
    candidates = [n for n in files if n.endswith(target.mutable)]
    name = rng.choice(candidates)
    data = bytearray(files[name])
    steps = []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
        field_aware = rng.random() < 0.45 and not (target.kind == "json" and name.endswith(".bin"))
        fn = FIELD[target.kind] if field_aware else rng.choice(GENERIC)
        if fn is FIELD["json"] and not name.endswith(".json"):
            fn = flip
        fn(rng, data)
        steps.append(getattr(fn, "__name__", "int_field").strip("_"))
    files[name] = bytes(data)
    return files, f"{name}: {'+'.join(steps)}"
