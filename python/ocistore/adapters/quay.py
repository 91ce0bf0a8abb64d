"""A storage engine with the method set of Quay's ``BaseStorageV2``, on ocistore.

Quay addresses everything by path. Paths of the form Quay derives from a digest
(``digest_tools.content_path``: ``sha256/<hex[:2]>/<hex>``) go to ocistore's content-addressed
``BlobStore``, so blobs land on distribution's layout
(``<root>/docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data``). Any other path (``_verify``,
user files, exported logs) is a plain file under ``<root>/quay/``; absolute paths and ``..``
components are refused with ``InvalidStoragePath``.

Chunked uploads are ocistore's resumable uploads (``<root>/docker/registry/v2/_uploads/<uuid>``):
the bytes are hashed in the Rust core as they are written, and each chunk ends with a checkpoint.
The storage metadata dict Quay keeps in its database carries plain JSON data: the upload id, its
size and the running hash state (Go's format, as hex). Any process can continue the upload from
that dict; when the data on disk runs past what the dict records (a chunk that failed after
writing, whose metadata Quay discarded), the upload is rolled back to the dict's state, as
Quay's ``LocalStorage`` overwrites from the offset it is given. ``complete_chunked_upload``
verifies the digest named by the final path from the running state, without re-reading the data.

Errors follow Quay's drivers: missing content is ``FileNotFoundError`` (an ``IOError``);
``stream_upload_chunk`` returns its error as the third element instead of raising.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any, Final, Protocol

from .. import _core, hashing
from .._core import BlobReader, Digest, Layout
from ..descriptor import OCTET_STREAM
from ..errors import (
    ErrBlobInvalidDigest,
    ErrBlobUnknown,
    ErrBlobUploadInvalid,
    ErrBlobUploadUnknown,
    ErrDigestInvalid,
    OciStoreError,
)
from ..storage.gc import purge_uploads
from ..storage.registry import Registry
from ..store import READ_BLOCK, BlobStore, BlobWriter

__all__ = ["FILES_DIR", "READ_UNTIL_END", "InvalidStoragePath", "OciStoreStorage"]

#: Quay's ``util.registry.filelike.READ_UNTIL_END``: a chunk length meaning "until EOF".
READ_UNTIL_END: Final = -1

#: Directory under the root that holds the paths that are not blobs.
FILES_DIR: Final = "quay"

#: Quay's ``BaseStorage`` reads this variable for its streaming buffer size (default 1 MiB).
_DEFAULT_BUFFER_SIZE: Final = 1024 * 1024

#: Version of the storage metadata layout below; a dict with another value is refused.
_METADATA_FORMAT: Final = 1

_BLOB_PATH = re.compile(r"(sha256|sha512|blake3)/([0-9a-f]{2})/([0-9a-f]+)")

_HASHERS: Final[dict[str, type[hashing.sha256] | type[hashing.sha512] | type[hashing.blake3]]] = {
    "sha256": hashing.sha256,
    "sha512": hashing.sha512,
    "blake3": hashing.blake3,
}


class InvalidStoragePath(ValueError):
    """A path that is empty, absolute, or climbs out of the storage root."""


class SupportsRead(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _UploadState:
    """The storage metadata of one upload, checked."""

    __slots__ = ("algorithm", "digest", "size", "state")

    def __init__(self, upload_id: str, metadata: object) -> None:
        if not isinstance(metadata, dict):
            raise ErrBlobUploadInvalid(
                f"storage metadata of upload {upload_id} is {type(metadata).__name__}, not a dict"
            )
        if metadata.get("ocistore") != _METADATA_FORMAT:
            raise ErrBlobUploadInvalid(
                f"storage metadata of upload {upload_id} was not written by this engine "
                f"(format {metadata.get('ocistore')!r}, expected {_METADATA_FORMAT})"
            )
        if metadata.get("upload") != upload_id:
            raise ErrBlobUploadInvalid(
                f"storage metadata names upload {metadata.get('upload')!r}, not {upload_id}"
            )
        size, algorithm, state = (metadata.get(k) for k in ("size", "algorithm", "hashstate"))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ErrBlobUploadInvalid(f"storage metadata of upload {upload_id}: bad size {size!r}")
        if not isinstance(algorithm, str) or algorithm not in _HASHERS:
            raise ErrBlobUploadInvalid(
                f"storage metadata of upload {upload_id}: unknown algorithm {algorithm!r}"
            )
        try:
            raw = bytes.fromhex(state) if isinstance(state, str) else None
        except ValueError:
            raw = None
        if raw is None:
            raise ErrBlobUploadInvalid(
                f"storage metadata of upload {upload_id}: hashstate is not a hex string"
            )
        hasher = _HASHERS[algorithm].from_state(raw)
        if hasher.length != size:
            raise ErrBlobUploadInvalid(
                f"storage metadata of upload {upload_id}: hash state covers {hasher.length} "
                f"bytes, size says {size}"
            )
        self.size = size
        self.algorithm = algorithm
        self.state = raw
        self.digest = Digest(f"{algorithm}:{hasher.hexdigest()}")


def _copy_of(metadata: object) -> dict[str, Any]:
    return dict(metadata) if isinstance(metadata, dict) else {}


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such content in storage", path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OciStoreStorage:
    """Quay's ``BaseStorageV2`` interface on an ocistore root.

    Constructed as Quay constructs its drivers: ``OciStoreStorage(context, storage_path)``, where
    ``context`` is Quay's ``StorageContext`` (unused here) and ``storage_path`` the root
    directory, the one parameter of the ``DISTRIBUTED_STORAGE_CONFIG`` entry.
    """

    def __init__(self, context: object, storage_path: str | os.PathLike[str]) -> None:
        self.context = context
        # Absolute so that every derived path has a parent directory to create and fsync.
        self.root = os.path.abspath(os.fspath(storage_path))
        self.buffer_size = int(os.environ.get("QUAY_STORAGE_BUFFER_SIZE", _DEFAULT_BUFFER_SIZE))
        self._store = BlobStore(self.root)
        self._files = os.path.join(self.root, FILES_DIR)
        self._uploads = os.path.join(self.root, Layout.uploads())

    # -- paths -------------------------------------------------------------------------------

    def _resolve(self, path: str) -> Digest | str:
        """The blob a digest-shaped path names, or the file any other path names."""
        if not isinstance(path, str):
            raise TypeError(f"storage path must be str, not {type(path).__name__}")
        match = _BLOB_PATH.fullmatch(path)
        if match is not None:
            algorithm, prefix, hex_ = match.groups()
            try:
                digest = Digest(f"{algorithm}:{hex_}")
            except ErrDigestInvalid:
                digest = None
            if digest is not None and prefix == hex_[:2]:
                return digest
        return self._file_path(path)

    def _file_path(self, path: str) -> str:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/") or "\0" in path or ".." in parts or not parts:
            raise InvalidStoragePath(
                f"invalid storage path {path!r}: must be relative, non-empty, without '..'"
            )
        return os.path.join(self._files, *parts)

    def _upload_dir(self, upload_id: str) -> str:
        # The id becomes a path component: only the core's upload-id grammar (the lowercase
        # uuid form ocistore creates) passes.
        if not isinstance(upload_id, str) or not _core.valid_upload_id(upload_id):
            raise ErrBlobUploadUnknown(f"blob upload unknown: {upload_id!r}")
        return os.path.join(self._uploads, upload_id)

    # -- BaseStorage -------------------------------------------------------------------------

    def setup(self) -> None:
        """Nothing to prepare: directories are created on first write."""

    def validate(self, client: object) -> None:
        """Quay's health check: writes ``_verify`` and reads its existence back."""
        self.put_content("_verify", b"testing 123")
        if not self.exists("_verify"):
            raise OSError(errno.EIO, "could not find verification file", "_verify")

    def get_direct_download_url(
        self,
        path: str,
        request_ip: str | None = None,
        expires_in: int = 60,
        requires_cors: bool = False,
        head: bool = False,
        **kwargs: Any,
    ) -> None:
        return None

    def get_direct_upload_url(self, path: str, mime_type: str, requires_cors: bool = True) -> None:
        return None

    def get_supports_resumable_downloads(self) -> bool:
        # Quay answers this with Accept-Ranges, but without a direct download URL it streams
        # whole blobs through stream_read; so, like LocalStorage, no.
        return False

    def get_content(self, path: str) -> bytes:
        target = self._resolve(path)
        if isinstance(target, Digest):
            try:
                return self._store.get(target)
            except ErrBlobUnknown:
                raise _missing(path) from None
        with open(target, "rb") as f:
            return f.read()

    def put_content(self, path: str, content: Buffer) -> str:
        """Stores ``content`` at ``path``; returns the file it is in.

        A digest-shaped path only takes content with that digest (``ErrBlobInvalidDigest``
        otherwise, nothing stored).
        """
        target = self._resolve(path)
        if isinstance(target, Digest):
            # Checked before storing: a put would file the bytes under their own digest.
            actual = _HASHERS[target.algorithm](content).hexdigest()
            if actual != target.hex:
                raise ErrBlobInvalidDigest(
                    f"content for {path} has digest {target.algorithm}:{actual}, not {target}"
                )
            self._store.put(OCTET_STREAM, content, algorithm=target.algorithm)
            return self._store.path(target)
        _core.write_file_atomic(target, content)
        return target

    def stream_read(self, path: str) -> Iterator[bytes]:
        # Opened before the generator starts, so a missing path fails at the call.
        return self._chunks(self.stream_read_file(path))

    def _chunks(self, reader: BlobReader | IO[bytes]) -> Iterator[bytes]:
        with reader:
            while chunk := reader.read(self.buffer_size):
                yield chunk

    def stream_read_file(self, path: str) -> BlobReader | IO[bytes]:
        """A readable, seekable file object; close it (or use ``with``)."""
        target = self._resolve(path)
        if isinstance(target, Digest):
            try:
                return self._store.open(target)
            except ErrBlobUnknown:
                raise _missing(path) from None
        return open(target, "rb")

    def stream_write(
        self,
        path: str,
        fp: SupportsRead,
        content_type: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        """Stores everything ``fp`` yields until EOF at ``path``, atomically."""
        target = self._resolve(path)
        if isinstance(target, Digest):
            writer = self._store.create(algorithm=target.algorithm)
            try:
                writer.read_from(fp)
                writer.commit(target)
            except BaseException:
                with contextlib.suppress(OSError, OciStoreError):
                    writer.cancel()
                raise
            return
        self._write_file(target, fp)

    def _write_file(self, target: str, fp: SupportsRead) -> None:
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        # A temporary file beside the target, renamed over it: readers never see half a file.
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".tmp-", delete=False) as out:
            try:
                while chunk := fp.read(self.buffer_size):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, target)
        _fsync_dir(parent)

    def exists(self, path: str) -> bool:
        target = self._resolve(path)
        if isinstance(target, Digest):
            try:
                self._store.stat(target)
            except ErrBlobUnknown:
                return False
            return True
        return os.path.exists(target)

    def remove(self, path: str) -> None:
        """Removes the blob, file or directory; a missing path is not an error (as in Quay)."""
        target = self._resolve(path)
        if isinstance(target, Digest):
            with contextlib.suppress(ErrBlobUnknown):
                self._store.delete(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)

    def get_checksum(self, path: str) -> str:
        """The first 7 hex digits of the content's sha256 (what Quay's ``LocalStorage`` returns).

        For a sha256 blob that is its digest; nothing is read.
        """
        target = self._resolve(path)
        if isinstance(target, Digest):
            try:
                self._store.stat(target)
            except ErrBlobUnknown:
                raise _missing(path) from None
            if target.algorithm == "sha256":
                return target.hex[:7]
        hasher = hashing.sha256()
        with self.stream_read_file(path) as reader:
            while chunk := reader.read(READ_BLOCK):
                hasher.update(chunk)
        return hasher.hexdigest()[:7]

    def copy_to(self, destination: Any, path: str) -> None:
        """Copies ``path`` into another Quay storage engine, under the same path."""
        with self.stream_read_file(path) as fp:
            destination.stream_write(path, fp)

    def clean_partial_uploads(self, deletion_date_threshold: timedelta) -> None:
        """Removes chunked uploads started longer ago than ``deletion_date_threshold``."""
        purge_uploads(Registry(self.root), older_than=deletion_date_threshold)

    # -- BaseStorageV2: chunked uploads --------------------------------------------------------

    def initiate_chunked_upload(self) -> tuple[str, dict[str, Any]]:
        """Starts an upload; returns its uuid and the storage metadata to pass back later."""
        writer = self._store.create()
        writer.close()
        return writer.id, self._metadata(writer)

    def _metadata(self, writer: BlobWriter) -> dict[str, Any]:
        """The storage metadata of a closed (checkpointed) writer: plain JSON data only."""
        state = writer.hash_state()
        return {
            "ocistore": _METADATA_FORMAT,
            "upload": writer.id,
            "size": writer.size,
            "algorithm": writer.algorithm,
            "hashstate": state.hex(),
        }

    def _resume(self, upload_id: str, recorded: _UploadState) -> BlobWriter:
        """The upload as its storage metadata describes it: bytes written after the metadata
        was recorded (a chunk whose metadata never reached Quay) are dropped by the core's
        rewind, crash-safely."""
        writer = self._store.rewind(upload_id, recorded.size, recorded.state)
        if writer.size != recorded.size or writer.digest() != recorded.digest:
            writer.close()
            raise ErrBlobUploadInvalid(
                f"upload {upload_id} on disk ({writer.size} bytes, {writer.digest()}) does not "
                f"match its storage metadata ({recorded.size} bytes, {recorded.digest})"
            )
        return writer

    def stream_upload_chunk(
        self,
        uuid: str,
        offset: int,
        length: int,
        in_fp: SupportsRead,
        storage_metadata: dict[str, Any],
        content_type: str | None = None,
    ) -> tuple[int, dict[str, Any], Exception | None]:
        """Appends up to ``length`` bytes of ``in_fp`` (``-1``: until EOF) to the upload.

        ``offset`` is the upload's size as the metadata records it, or 0: Quay's blob uploader
        passes 0 for a request without ``Content-Range`` and appends to its own running sha256,
        so 0 appends here as well. Returns ``(bytes_written, new_metadata, error)``: I/O and
        upload errors are returned, not raised, with metadata describing what is on disk.
        """
        try:
            recorded = _UploadState(uuid, storage_metadata)
            if offset not in (0, recorded.size):
                raise ErrBlobUploadInvalid(
                    f"chunk offset {offset} does not match upload {uuid} at {recorded.size} bytes"
                )
            writer = self._resume(uuid, recorded)
        except (OSError, OciStoreError) as exc:
            return 0, _copy_of(storage_metadata), exc
        start = writer.size
        error: Exception | None = None
        try:
            with writer:  # closing checkpoints data and state, whatever the copy did
                try:
                    self._copy(writer, in_fp, length)
                except (OSError, OciStoreError) as exc:
                    error = exc
            metadata = self._metadata(writer)
        except (OSError, OciStoreError) as exc:
            return writer.size - start, _copy_of(storage_metadata), error or exc
        return writer.size - start, metadata, error

    @staticmethod
    def _copy(writer: BlobWriter, in_fp: SupportsRead, length: int) -> None:
        if length < 0:
            writer.read_from(in_fp)
            return
        remaining = length
        while remaining > 0:
            chunk = in_fp.read(min(remaining, READ_BLOCK))
            if not chunk:
                break
            writer.write(chunk)
            remaining -= len(chunk)

    def complete_chunked_upload(
        self, uuid: str, final_path: str, storage_metadata: dict[str, Any]
    ) -> None:
        """Moves the upload to ``final_path``.

        A digest-shaped path is verified against the running hash state (no re-read):
        ``ErrBlobInvalidDigest`` on a mismatch, and the upload stays for a cancel. A blob that is
        already stored is success.
        """
        target = self._resolve(final_path)
        writer = self._resume(uuid, _UploadState(uuid, storage_metadata))
        if isinstance(target, Digest):
            writer.commit(target)
            return
        writer.move_data_to(target)

    def cancel_chunked_upload(self, uuid: str, storage_metadata: dict[str, Any]) -> None:
        """Removes the upload and its data; an upload already gone is not an error."""
        # Removed directly: resuming first would re-hash data only to throw it away.
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._upload_dir(uuid))

    def __repr__(self) -> str:
        return f"OciStoreStorage({self.root!r})"
