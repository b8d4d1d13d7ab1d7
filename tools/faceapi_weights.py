"""Re-create ``nnlite/weights/faceapi/`` from the ``@vladmandic/face-api`` 1.7.15 package archive and check it.

How a user gets the archive: ``npm pack @vladmandic/face-api@1.7.15`` (writes
``vladmandic-face-api-1.7.15.tgz``). The 7 manifests and 7 ``.bin`` shards under ``package/model/`` are copied
unchanged, and ``NOTICE`` (origin, the package's MIT licence text, the sha256 list) is written beside them;
each file is checked against the sha256 list below before anything is written, and every file is written
to a temporary name and renamed, so an interrupted run never leaves a half-written weight file.

Usage::

    python tools/faceapi_weights.py vladmandic-face-api-1.7.15.tgz [--out nnlite/weights/faceapi]
    python tools/faceapi_weights.py --check [--out nnlite/weights/faceapi]     # verify the bundled copy only
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_DIR / "nnlite" / "weights" / "faceapi"
ARCHIVE_PREFIX = "package/model/"
LICENSE_MEMBER = "package/LICENSE"

NETS = ("ssd_mobilenetv1", "tiny_face_detector", "face_landmark_68", "face_landmark_68_tiny",
        "face_recognition", "age_gender", "face_expression")

# sha256 of each file as shipped in @vladmandic/face-api 1.7.15 (package/model/).
SHA256 = {
    "age_gender_model-weights_manifest.json":
        "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f",
    "age_gender_model.bin":
        "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa",
    "face_expression_model-weights_manifest.json":
        "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
    "face_expression_model.bin":
        "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
    "face_landmark_68_model-weights_manifest.json":
        "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
    "face_landmark_68_model.bin":
        "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
    "face_landmark_68_tiny_model-weights_manifest.json":
        "9a1a5dd19fd814fd5095c3cb58f8e0d3193b8c5b9a6715b30a69d559aea31ad4",
    "face_landmark_68_tiny_model.bin":
        "b98e9f2f7da76f8a6dda9741a36ed485b224b889d552de2b2c1bb16217f67bfc",
    "face_recognition_model-weights_manifest.json":
        "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
    "face_recognition_model.bin":
        "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
    "ssd_mobilenetv1_model-weights_manifest.json":
        "888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955",
    "ssd_mobilenetv1_model.bin":
        "2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8",
    "tiny_face_detector_model-weights_manifest.json":
        "5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5",
    "tiny_face_detector_model.bin":
        "b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871",
}


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_archive(archive: Path) -> tuple[dict[str, bytes], str]:
    """Return ``{file name: bytes}`` for every expected weight file, and the licence text; fail if one is missing."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            files = {}
            for name in SHA256:
                try:
                    member = tar.getmember(ARCHIVE_PREFIX + name)
                except KeyError:
                    raise SystemExit(f"error: {archive} has no {ARCHIVE_PREFIX + name} - is it "
                                     f"@vladmandic/face-api 1.7.15 (npm pack)?") from None
                files[name] = tar.extractfile(member).read()
            licence = tar.extractfile(tar.getmember(LICENSE_MEMBER)).read().decode("utf-8")
            return files, licence
    except KeyError:
        raise SystemExit(f"error: {archive} has no {LICENSE_MEMBER}") from None
    except (tarfile.TarError, OSError) as exc:
        raise SystemExit(f"error: cannot read package archive {archive}: {exc}") from None


def check_hashes(files: dict[str, bytes], where: str) -> list[str]:
    """Return one message per file whose sha256 differs from the pinned one."""
    bad = []
    for name, expected in SHA256.items():
        if name not in files:
            bad.append(f"{where}/{name}: missing")
            continue
        found = sha256_of(files[name])
        if found != expected:
            bad.append(f"{where}/{name}: sha256 {found}, expected {expected}")
    return bad


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def notice_text(licence: str) -> str:
    """NOTICE: where the files come from, under which licence, and their sha256s."""
    hashes = "\n".join(f"{digest}  {name}" for name, digest in SHA256.items())
    return (
        "face-api.js model weights, bundled unchanged\n"
        "=============================================\n\n"
        "Origin: npm package @vladmandic/face-api version 1.7.15, folder package/model/\n"
        "(get the archive with `npm pack @vladmandic/face-api@1.7.15`). These are the weights of the\n"
        "face-api.js nets by Vincent Muehler (justadudewhohacks/face-api.js), as redistributed by\n"
        "Vladimir Mandic. Re-create and verify this folder with:\n\n"
        "    python tools/faceapi_weights.py vladmandic-face-api-1.7.15.tgz\n\n"
        "Licence: MIT. The package's licence text follows.\n\n"
        f"{licence.strip()}\n\n"
        "sha256 of each file (sha256sum format)\n"
        "--------------------------------------\n"
        f"{hashes}\n"
    )


def install(archive: Path, out: Path) -> None:
    files, licence = read_archive(archive)
    bad = check_hashes(files, str(archive))
    if bad:
        raise SystemExit("error: archive content differs from the pinned sha256s:\n  " + "\n  ".join(bad))
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(out / name, data)
    write_atomic(out / "NOTICE", notice_text(licence).encode("utf-8"))
    print(f"wrote {len(files)} files to {out} (sha256 checked)")


def check_dir(out: Path) -> int:
    files = {name: (out / name).read_bytes() for name in SHA256 if (out / name).is_file()}
    bad = check_hashes(files, str(out))
    for line in bad:
        print(line, file=sys.stderr)
    if not bad:
        print(f"{out}: all {len(SHA256)} files match the pinned sha256s")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", nargs="?", type=Path, help="vladmandic-face-api-1.7.15.tgz (npm pack)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="target folder (default nnlite/weights/faceapi)")
    parser.add_argument("--check", action="store_true", help="only verify the files already in --out")
    args = parser.parse_args(argv)
    if args.check:
        return check_dir(args.out)
    if args.archive is None:
        parser.error("give the package archive, or --check")
    install(args.archive, args.out)
    return check_dir(args.out)


if __name__ == "__main__":
    sys.exit(main())
