"""Download model weights that nnlite cannot bundle (``nnlite fetch MODEL``).

The Keras-applications ImageNet files are published by the Keras team; Keras itself checks them
against an MD5 digest, which is the only published checksum (no official SHA-256 is known), so
nnlite checks that MD5 too and prints the SHA-256 it computed for the record.

A download goes to a temporary file next to its destination and is renamed into place only
after its length, its HDF5 signature and its digest check out, so an interrupted, truncated or
corrupt download never leaves a file behind.

TF-Hub modules (``pnasnet_large``) come as a compressed TF1-Hub-format archive (``.tar.gz``, no published
digest). It is downloaded the same way, then unpacked into a folder of the models cache by
:mod:`nnlite.archive` (regular files and folders only, every path inside the target, size limits) and
renamed into place once whole.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .errors import WeightsError, WeightsMissingError
from .fsutil import atomic_path, atomic_write_bytes
from .paths import models_cache_dir

KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/keras-applications"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
GZIP_SIGNATURE = b"\x1f\x8b"
TFHUB = "https://tfhub.dev/google"
PROVENANCE = "nnlite-fetch.json"   # beside an unpacked module: its URL, the archive's sha256, the licence
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    filename: str       # name in the models cache (the official file name)
    url: str
    md5: str | None     # the digest Keras checks (keras.applications' file_hash)
    licence: str
    archive: bool = False   # a TF-Hub module .tar.gz, unpacked into the folder ``filename``
    layout: tuple[str, ...] = ()   # layer groups the file must have, where no digest is published


REMOTE_WEIGHTS: dict[str, RemoteFile] = {
    "nasnet_mobile": RemoteFile("NASNet-mobile.h5", f"{KERAS_BUCKET}/nasnet/NASNet-mobile.h5",
                                "020fb642bf7360b370c678b08e0adf61", "Apache-2.0 (Keras applications)"),
    "xception": RemoteFile("xception_weights_tf_dim_ordering_tf_kernels.h5",
                           f"{KERAS_BUCKET}/xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
                           "0a58e3b7378bc2990ea3b43d5981f1f6", "MIT (Keras applications)"),
    "resnet50": RemoteFile("resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                           f"{KERAS_BUCKET}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                           "2cb95161c43110f7111970584f804107", "MIT (Keras applications)"),
    "pnasnet_large": RemoteFile("pnasnet_large", f"{TFHUB}/imagenet/pnasnet_large/classification/2"
                                "?tf-hub-format=compressed", None, "CC-BY-3.0 (TF-Hub module)", archive=True),
    # matterport publishes no digest for this file; its layout is checked when it is loaded
    "mask_rcnn_coco": RemoteFile("mask_rcnn_coco.h5",
                                 "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5",
                                 None, "MIT (matterport/Mask_RCNN)",
                                 layout=("conv1", "res4w_branch2c", "fpn_p2", "rpn_model", "mrcnn_class_logits",
                                         "mrcnn_bbox_fc", "mrcnn_mask")),
}


def fetch(model: str, *, url: str | None = None, md5: str | None = None, force: bool = False,
          dest_dir: str | Path | None = None, progress: TextIO | None | str = "stderr",
          timeout: float = 60.0) -> Path:
    """Download ``model``'s weights into the models cache (or ``dest_dir``) and return the path.

    ``url`` replaces the official address (a mirror, or a ``file://`` URL); ``md5`` replaces the
    expected digest (``""`` skips the digest check). An existing file is kept unless ``force``.
    """
    if progress == "stderr":   # the stream of the moment, not the one bound at import (tests redirect it)
        progress = sys.stderr
    remote = remote_file(model)
    dest = Path(dest_dir) if dest_dir is not None else models_cache_dir()
    target = dest / remote.filename
    if target.exists() and not force:
        return target
    expected = remote.md5 if md5 is None else (md5.lower() or None)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the models cache {dest}: {exc.strerror or exc}") from None
    if remote.archive:
        from .archive import unpack_module
        with tempfile.TemporaryDirectory(prefix=f".{remote.filename}.", dir=dest) as tmp:
            packed = Path(tmp) / "module.tar.gz"
            sha256 = download(url or remote.url, packed, md5=expected, progress=progress, timeout=timeout,
                              signature=GZIP_SIGNATURE)
            unpack_module(packed, target, url or remote.url)
        # no digest is published for hub archives: record what was fetched, for the weights' provenance
        record = {"url": url or remote.url, "archive_sha256": sha256, "licence": remote.licence}
        atomic_write_bytes(target / PROVENANCE, (json.dumps(record, indent=1) + "\n").encode())
        if progress is not None:
            progress.write(f"{remote.filename}: archive sha256 {sha256} (recorded in {PROVENANCE})\n")
        return target
    download(url or remote.url, target, md5=expected, progress=progress, timeout=timeout, layout=remote.layout)
    return target


def module_dir(model: str) -> Path:
    """The unpacked TF-Hub module of ``model`` in the models cache; WeightsMissingError names ``nnlite fetch``."""
    found = cached_weights(model)
    if found is None:
        raise WeightsMissingError(
            f"{model}: weights not found (looked for {models_cache_dir() / remote_file(model).filename}). "
            f"Download the TF-Hub module with `nnlite fetch {model}` (needs internet), or pass its folder.")
    return found


def cached_weights(model: str) -> Path | None:
    """The weights file of ``model`` in the models cache, or None: the official file that ``fetch``
    saves, else ``<model>.h5`` or ``<model>.weights.h5`` (Keras 3 layout) placed there by hand."""
    cache = models_cache_dir()
    if remote_file(model).archive:
        folder = cache / remote_file(model).filename
        return folder if (folder / "variables" / "variables.index").is_file() else None
    for candidate in (remote_file(model).filename, f"{model}.h5", f"{model}.weights.h5"):
        if (cache / candidate).is_file():
            return cache / candidate
    return None


def remote_file(model: str) -> RemoteFile:
    try:
        return REMOTE_WEIGHTS[model]
    except KeyError:
        known = ", ".join(sorted(REMOTE_WEIGHTS))
        raise WeightsError(f"no downloadable weights for {model!r}; `nnlite fetch` knows: {known}") from None


def download(url: str, target: Path, *, md5: str | None, progress: TextIO | None = None,
             timeout: float = 60.0, signature: bytes = HDF5_SIGNATURE, layout: tuple[str, ...] = ()) -> str:
    """Stream ``url`` into ``target`` atomically; returns the SHA-256 of what was written."""
    with atomic_path(target) as tmp:   # readers see no file or the whole, checked file
        with open(tmp, "wb") as out:
            digests = _copy(url, out, progress, timeout)
        _check(url, tmp, digests, md5, signature)
        _check_layout(url, tmp, layout)
    return digests["sha256"].hexdigest()


def _copy(url: str, out, progress: TextIO | None, timeout: float) -> dict:
    """Copy the body of ``url`` to ``out``, hashing as it goes; checks the announced length."""
    import urllib.error  # here, not at import: a warm start never downloads, and http.client and ssl are slow to import
    import urllib.request
    digests = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    try:
        response = urllib.request.urlopen(url, timeout=timeout)   # noqa: S310 - http(s) and file URLs
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"download failed: {url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"cannot download {url}: {reason} (is this machine online? "
                           "use --url to fetch from a mirror or a local file:// copy)") from None
    with response:
        total = _announced_length(response)
        report = _progress_printer(progress, url, total)
        received = 0
        try:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                for d in digests.values():
                    d.update(chunk)
                received += len(chunk)
                report(received)
        except (OSError, ValueError) as exc:   # connection reset, http.client.IncompleteRead, ...
            raise WeightsError(f"download of {url} broke off after {received:,} bytes: {exc}") from None
        finally:
            report(received, done=True)
    if total is not None and received != total:
        raise WeightsError(f"download of {url} is truncated: got {received:,} of {total:,} bytes")
    return digests


def _check(url: str, path: Path, digests: dict, md5: str | None, signature: bytes = HDF5_SIGNATURE) -> None:
    with open(path, "rb") as f:
        head = f.read(len(signature))
    if head != signature:
        kind = "an HDF5 (.h5) file" if signature == HDF5_SIGNATURE else "a gzip-compressed (.tar.gz) archive"
        raise WeightsError(f"{url} did not deliver {kind} (it starts with {head!r}); nothing was saved")
    if md5 is not None and digests["md5"].hexdigest() != md5:
        raise WeightsError(f"{url}: MD5 {digests['md5'].hexdigest()} does not match the official file's "
                           f"{md5}; the download is corrupt or not the official file. Nothing was saved")


def _check_layout(url: str, path: Path, layout: tuple[str, ...]) -> None:
    """Without a published digest, the file's layer groups say whether it is the model's file."""
    if not layout:
        return
    import h5py
    try:
        with h5py.File(path, "r") as f:
            names = {n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs.get("layer_names", [])}
    except OSError as exc:
        raise WeightsError(f"{url}: not a readable HDF5 file ({exc}); nothing was saved") from None
    missing = [g for g in layout if g not in names]
    if missing:
        raise WeightsError(f"{url}: the file lacks layer(s) {missing} of the expected model; nothing was saved")


def _announced_length(response) -> int | None:
    value = response.headers.get("Content-Length") if response.headers else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _progress_printer(stream: TextIO | None, url: str, total: int | None) -> Callable[..., None]:
    """A callback printing ``name  12.3 / 88.0 MB  14%`` on one line, at most once per whole percent."""
    if stream is None:
        return lambda received, done=False: None
    name = url.rsplit("/", 1)[-1]
    interactive = hasattr(stream, "isatty") and stream.isatty()
    last = [-1]

    def report(received: int, done: bool = False) -> None:
        step = received * 100 // total if total else received // (4 * CHUNK)
        if step == last[0] and not done:
            return
        last[0] = step
        mb = f"{received / 1e6:.1f}" + (f" / {total / 1e6:.1f} MB  {step}%" if total else " MB")
        if interactive:
            stream.write(f"\r{name}  {mb}" + ("\n" if done else ""))
        elif done:
            stream.write(f"{name}  {mb}\n")
        stream.flush()
    return report
