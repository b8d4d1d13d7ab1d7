"""Zip archives (``.npz``, zip ``.pth``) read with every size checked before anything is inflated.

``zipfile`` itself trusts a member's declared uncompressed size: a 300-byte archive can declare 16 GB and a
23 MB one can inflate to tens of GB. Here a member is only read when its declared sizes are possible
(stored: equal sizes; deflate: at most 1032 output bytes per input byte, deflate's own ceiling), fit in the
archive and stay under :func:`nnlite.limits.max_expand_bytes`; reads stop at the declared size. Only the
methods NumPy and PyTorch write (stored, deflate) are accepted, never encrypted members.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..errors import WeightsError
from ..limits import check_expand

_DEFLATE_MAX_RATIO = 1032  # a deflate stream cannot expand by more than this (RFC 1951 block limits)
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class BoundedZip:
    """A read-only zip archive over ``data`` (the whole file); members come back checked and bounded."""

    def __init__(self, path: str | Path, data: bytes, what: str = "zip archive"):
        self.path, self.size, self.what = Path(path), len(data), what
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            self._infos = {info.filename: info for info in self._zip.infolist()}
        except Exception as exc:  # BadZipFile, ValueError, EOFError, NotImplementedError, UnicodeDecodeError...
            raise WeightsError(f"{self.path}: damaged {what} ({type(exc).__name__}: {exc})") from None

    def names(self) -> list[str]:
        return list(self._infos)

    def member_size(self, name: str) -> int:
        """The declared uncompressed size of ``name`` (after the checks of :meth:`check`)."""
        return self.check(name).file_size

    def check(self, name: str) -> zipfile.ZipInfo:
        """The member's ZipInfo once its method, flags and declared sizes are known to be readable."""
        info = self._infos.get(name)
        if info is None:
            raise WeightsError(f"{self.path}: zip member {name} missing")
        where = f"{self.path}: zip member {name}"
        if info.flag_bits & 0x1:
            raise WeightsError(f"{where} is encrypted")
        method = _METHODS.get(info.compress_type)
        if method is None:
            raise WeightsError(f"{where} uses compression method {info.compress_type} (only stored and "
                               f"deflate are supported)")
        if info.compress_size > self.size or info.header_offset + info.compress_size > self.size:
            raise WeightsError(f"{where} declares {info.compress_size:,} compressed bytes, more than the "
                               f"archive's {self.size:,}")
        if method == "stored" and info.file_size != info.compress_size:
            raise WeightsError(f"{where} is stored uncompressed but declares {info.file_size:,} bytes in "
                               f"{info.compress_size:,}")
        if info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 64:
            raise WeightsError(f"{where} declares {info.file_size:,} bytes from {info.compress_size:,} "
                               f"compressed bytes, more than deflate can produce")
        check_expand(info.file_size, info.compress_size, WeightsError, where)
        return info

    def open(self, name: str):
        """A stream over the checked member; reads end at its declared size (zipfile's own bound)."""
        info = self.check(name)
        try:
            return self._zip.open(info)
        except Exception as exc:
            raise WeightsError(f"{self.path}: zip member {name} is damaged ({type(exc).__name__}: {exc})") \
                from None

    def read(self, name: str) -> bytes:
        """All bytes of a checked member; a short or corrupt member is a WeightsError."""
        info = self.check(name)
        try:
            with self._zip.open(info) as stream:
                data = stream.read(info.file_size)
        except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError, NotImplementedError ...
            raise WeightsError(f"{self.path}: zip member {name} is damaged ({type(exc).__name__}: {exc})") \
                from None
        if len(data) != info.file_size:
            raise WeightsError(f"{self.path}: zip member {name} holds {len(data):,} bytes, its header "
                               f"declares {info.file_size:,}")
        return data
