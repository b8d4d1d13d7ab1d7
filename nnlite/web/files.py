"""Reading a library photo for the web demo: only the very file that was indexed, never anything else.

The index records each image's path, size and sha256 at index time. A file is served only when

- it is a regular file reached without any symbolic link (the final name is opened with O_NOFOLLOW
  and its folder must be its own real path), so ``evil.jpg -> /etc/passwd`` is refused outright;
- its size and sha256 are the ones recorded, so a file swapped or edited since indexing is refused
  (re-run ``nnlite index`` to pick up the change);
- the index recorded no error for it (an unreadable file was never an image).

The check reads the whole file once (it is served from those same bytes, so a swap between check
and send cannot slip through). Verified (device, inode, size, mtime, ctime) keys are remembered so
repeated thumbnails do not re-hash.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading

from .http_error import HttpError

READ_CHUNK = 1 << 20


class VerifiedReader:
    def __init__(self, cache_size: int = 4096):
        self.verified: dict[tuple, str] = {}
        self.lock = threading.Lock()
        self.cache_size = cache_size

    def read(self, image_id: int, path: str, size: int, sha256: str | None, error: str | None) -> bytes:
        """The bytes of indexed image ``image_id``, or HttpError 404/409 saying why it is not served."""
        if error is not None or not sha256:
            raise HttpError(404, f"image {image_id} was recorded as unreadable when indexed: {error}")
        folder = os.path.dirname(path)
        if not os.path.isabs(path) or os.path.realpath(folder) != folder:
            raise HttpError(403, f"image {image_id} is not served: its folder is reached through a "
                                 f"symbolic link")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if os.path.islink(path):
                raise HttpError(403, f"image {image_id} is not served: {os.path.basename(path)} is a "
                                     f"symbolic link (copy the photo into the library instead)") from None
            raise HttpError(404, f"image {image_id} is indexed but its file cannot be opened any more "
                                 f"({exc.strerror or exc})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise HttpError(403, f"image {image_id} is not served: not a regular file")
            if info.st_size != size:
                raise HttpError(409, f"image {image_id} changed since it was indexed ({info.st_size} bytes "
                                     f"now, {size} then): re-run `nnlite index`")
            data = f.read(size + 1)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with self.lock:
            known = self.verified.get(key)
        if known == sha256 and len(data) == size:
            return data
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise HttpError(409, f"image {image_id} changed since it was indexed (different content): "
                                 f"re-run `nnlite index`")
        with self.lock:
            if len(self.verified) >= self.cache_size:
                self.verified.clear()
            self.verified[key] = sha256
        return data
