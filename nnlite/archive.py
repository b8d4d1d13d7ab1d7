"""Unpacking a downloaded TF-Hub module archive (``.tar.gz``) safely.

An archive is data from the network, so nothing in it decides where bytes land or how many: only regular
files and folders are unpacked (no links, devices or FIFOs), every path must stay inside the target (no
absolute paths, no ``..``), and the member count and unpacked size are capped (a gzip bomb stops at the cap,
not at the disk's end). The archive unpacks into a temporary folder beside the target, must hold a TF1 Hub
module (``variables/variables.index``), and is renamed into place only then: the target is either absent, the
previous module, or the whole new one.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import WeightsError

MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 4 << 30     # PNASNet-5 Large's module is about 0.35 GB unpacked
CHUNK = 1 << 20


def safe_member_path(name: str, where: str) -> PurePosixPath | None:
    """The member's path relative to the target (None for the archive root ``.``); WeightsError if it escapes."""
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("\\") or (path.parts and ":" in path.parts[0]):
        raise WeightsError(f"{where}: archive member {name!r} has an absolute path; nothing was unpacked")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise WeightsError(f"{where}: archive member {name!r} points outside the target folder; "
                           "nothing was unpacked")
    return PurePosixPath(*parts) if parts else None


def unpack(archive: str | Path, dest: str | Path, where: str, *, max_members: int = MAX_MEMBERS,
           max_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack the regular files and folders of the .tar.gz ``archive`` into the existing folder ``dest``."""
    dest = Path(dest)
    total = count = 0
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                count += 1
                if count > max_members:
                    raise WeightsError(f"{where}: the archive has more than {max_members:,} members; refused")
                rel = safe_member_path(member.name, where)
                if member.isdir():
                    if rel is not None:
                        (dest / rel).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise WeightsError(f"{where}: archive member {member.name!r} is a link or special file; "
                                       "nothing was unpacked")
                if rel is None:
                    raise WeightsError(f"{where}: archive member {member.name!r} has no file name")
                total += member.size
                if total > max_bytes:
                    raise WeightsError(f"{where}: the archive unpacks to more than {max_bytes / 1e9:.1f} GB; refused")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    raise WeightsError(f"{where}: archive member {member.name!r} appears twice; refused")
                source = tar.extractfile(member)
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise WeightsError(f"{where}: cannot unpack the archive ({exc}); nothing was saved") from None


def unpack_module(archive: str | Path, target: str | Path, where: str) -> Path:
    """Unpack a TF-Hub module archive into the folder ``target`` (replacing a previous one only on success)."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        unpack(archive, tmp, where)
        if not (tmp / "variables" / "variables.index").is_file():
            found = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))[:6]
            raise WeightsError(f"{where}: the archive is not a TF-Hub module (no variables/variables.index; "
                               f"it holds {found}); nothing was saved")
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
