"""Storage drivers: where the registry's links, tags and uploads live.

The part of distribution's ``storagedriver`` the registry layer needs, over keys: relative,
``/``-separated paths under the storage root (``docker/registry/v2/repositories/a/_layers/...``),
the same keys distribution's filesystem and S3 drivers use. Two drivers:

``FilesystemDriver``
    A directory tree; writes are atomic and durable (fsync, rename, fsync of the directory); the
    GC lock is an ``flock``; ``touch`` refreshes modification times for the GC protocol.

``ObjectStoreDriver``
    Object storage (S3, Azure, GCS) through the Rust core (``ocistore._core.ObjectStore``, the
    ``object_store`` crate). A PUT is atomic; directories are key prefixes. There is no lock:
    ``touch`` writes a mark object and waits out a collector's claim, ``gc_claim`` and
    ``gc_lease`` are objects too (``ocistore.storage.gc`` has the protocol).
"""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from .. import _core
from .._core import Digest, GcClaim, GcLease
from ..errors import ErrUnsupported
from ..store import BlobStore

__all__ = ["FilesystemDriver", "ObjectStoreDriver", "StorageDriver", "check_key"]


def check_key(key: str) -> str:
    """Refuses keys that could leave the root or alias another (the core's rule): absolute,
    empty, with empty, ``.`` or ``..`` segments, or control characters."""
    _core.Layout.check_key(key)
    return key


def remove_tree(path: Path) -> bool:
    """Removes a file or a directory tree; ``False`` when there was nothing."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        path.unlink()
    return True


class StorageDriver(Protocol):
    @property
    def url(self) -> str:
        """Where the storage is, for messages: a directory or ``s3://bucket/root``."""
        ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes; ``None`` when there is none."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Replaces the object atomically and durably."""
        ...

    def list(self, key: str) -> list[str]:
        """Names directly under ``key``, sorted; ``[]`` when there are none."""
        ...

    def exists(self, key: str) -> bool:
        """An object or a directory (a prefix with objects under it)."""
        ...

    def dirs_holding(self, base: str, marker: str) -> builtins.list[str]:
        """Paths (relative to ``base``) of the directories under ``base`` that hold an entry
        named ``marker``, not looking inside directories whose name starts with ``_``."""
        ...

    def delete(self, key: str) -> bool:
        """Removes the object and everything under it; ``False`` when there was nothing."""
        ...

    def delete_upload(self, key: str) -> bool:
        """Removes the upload kept under ``key`` as cancelling it does (on object storage the
        multipart upload its state records is aborted first, so its parts are freed too);
        ``False`` when there was nothing."""
        ...

    def modified(self, key: str) -> float | None:
        """Last modification (UNIX seconds) of an object or directory; ``None`` if unknown."""
        ...

    def prune_empty(self, key: str, stop: str) -> None:
        """Removes empty directories from ``key`` up to, not including, ``stop``."""
        ...

    def touch(self, key: str) -> bool:
        """Marks the object recently used, for the GC protocol; ``False`` when it is absent."""
        ...

    def blob_store(self) -> BlobStore:
        """The content-addressed blob store on the same storage."""
        ...

    def gc_lock(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """The lock between pushes (shared) and the garbage collector's deletes (exclusive)."""
        ...

    def mark_revision(self, repository: str, digest: Digest) -> None:
        """A manifest push's first step under the GC lock: its revision link marked."""
        ...

    def check_blob_reference(self, repository: str, digest: Digest) -> Digest | None:
        """The digest of the bytes ``repository`` serves under a manifest's referenced blob
        ``digest``, marked used now; None when it does not have them."""
        ...

    def store_manifest(
        self,
        repository: str,
        digest: Digest,
        payload: bytes,
        subject: Digest | None,
        tags: Sequence[str],
    ) -> None:
        """Stores a verified manifest: its bytes, revision link, referrers entry, tag links."""
        ...

    def write_tag(self, repository: str, tag: str, digest: Digest) -> None:
        """Points ``tag`` at the stored revision ``digest``: its index link, then its current
        link."""
        ...

    def unlink_blob(self, repository: str, digest: Digest) -> bool:
        """Removes ``repository``'s link to the blob; ``False`` when it does not link it."""
        ...

    def tags(self, repository: str) -> builtins.list[str] | None:
        """The repository's tags, sorted; ``None`` when the repository is not known."""
        ...

    def repository_exists(self, repository: str) -> bool:
        """Whether the repository holds manifests, linked blobs or uploads."""
        ...

    def tagged(self, repository: str, digest: Digest) -> builtins.list[str]:
        """The repository's tags that point at ``digest``, sorted."""
        ...

    def untag(self, repository: str, tag: str) -> bool:
        """Removes the tag with its history; ``False`` when there is no such tag."""
        ...

    def delete_manifest(self, repository: str, digest: Digest, subject: Digest | None) -> bool:
        """Deletes the manifest: the tags on it, its entry in ``subject``'s referrers index,
        its revision link; ``False`` when the repository does not hold it."""
        ...

    def gc_claim(self, key: str) -> GcClaim:
        """The collector's claim on the object at ``key``, held until released."""
        ...

    def gc_lease(self, owner: str, ttl_seconds: float = 60.0) -> GcLease | str:
        """The one collector's lease, or who holds it."""
        ...

    def require_filesystem(self, what: str) -> Path:
        """The root directory, or ``ErrUnsupported`` naming ``what`` needs one."""
        ...


class _CoreLinks:
    """The GC mark, lock, claim and lease, for either driver: the core's (``crate::linked``),
    the very ones its commits and the native front take."""

    _core: _core.Storage

    def list(self, key: str) -> builtins.list[str]:
        return self._core.list(key)

    def exists(self, key: str) -> bool:
        return self._core.exists(key)

    def delete(self, key: str) -> bool:
        return self._core.remove(key)

    def prune_empty(self, key: str, stop: str) -> None:
        self._core.prune_empty(key, stop)

    def touch(self, key: str) -> bool:
        return self._core.mark(check_key(key))

    @contextmanager
    def gc_lock(self, *, exclusive: bool = False) -> Iterator[None]:
        with self._core.gc_lock(exclusive):
            yield

    def gc_claim(self, key: str) -> GcClaim:
        return self._core.gc_claim(check_key(key))

    # A manifest push's steps (``crate::manifest_commit``), the very ones the native front's
    # pushes take.
    def mark_revision(self, repository: str, digest: Digest) -> None:
        self._core.mark_revision(repository, digest)

    def check_blob_reference(self, repository: str, digest: Digest) -> Digest | None:
        return self._core.check_blob_reference(repository, digest)

    def store_manifest(
        self,
        repository: str,
        digest: Digest,
        payload: bytes,
        subject: Digest | None,
        tags: Sequence[str],
    ) -> None:
        self._core.store_manifest(repository, digest, payload, subject, list(tags))

    def write_tag(self, repository: str, tag: str, digest: Digest) -> None:
        self._core.write_tag(repository, tag, digest)

    # How blob links, tags and manifests leave a repository, and its tags listed
    # (``crate::linked::unlink``, ``crate::tags``, ``crate::manifest_delete``): the very steps
    # the native front takes.
    def unlink_blob(self, repository: str, digest: Digest) -> bool:
        return self._core.unlink(repository, digest)

    def tags(self, repository: str) -> builtins.list[str] | None:
        return self._core.tags(repository)

    def repository_exists(self, repository: str) -> bool:
        return self._core.repository_exists(repository)

    def tagged(self, repository: str, digest: Digest) -> builtins.list[str]:
        return self._core.tagged(repository, digest)

    def untag(self, repository: str, tag: str) -> bool:
        return self._core.untag(repository, tag)

    def delete_manifest(self, repository: str, digest: Digest, subject: Digest | None) -> bool:
        return self._core.delete_manifest(repository, digest, subject)

    def gc_lease(self, owner: str, ttl_seconds: float = 60.0) -> GcLease | str:
        return self._core.gc_lease(owner, ttl_seconds)


class FilesystemDriver(_CoreLinks):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.fspath(root))
        # Keys become file names by concatenation: pathlib's parsing cost more than the read
        # on the registry's hottest paths (HEAD, link checks).
        self._prefix = os.path.join(os.fspath(root), "")
        self._core = _core.Storage(self.root)

    @property
    def url(self) -> str:
        return os.fspath(self.root)

    def path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        return self._prefix + check_key(key)

    def read(self, key: str) -> bytes | None:
        try:
            with open(self._file(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, key: str, data: bytes) -> None:
        _core.write_file_atomic(self._file(key), data)

    def dirs_holding(self, base: str, marker: str) -> builtins.list[str]:
        found = []
        stack = [""]
        while stack:
            name = stack.pop()
            entries = self.list(f"{base}/{name}" if name else base)
            if marker in entries and name:
                found.append(name)
            # A file among the entries lists as empty: only directories lead anywhere.
            stack.extend(f"{name}/{e}" if name else e for e in entries if not e.startswith("_"))
        return found

    def delete_upload(self, key: str) -> bool:
        return self.delete(key)

    def modified(self, key: str) -> float | None:
        try:
            return os.stat(self._file(key)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def blob_store(self) -> BlobStore:
        return BlobStore(self.root)

    def require_filesystem(self, what: str) -> Path:
        return self.root

    def __repr__(self) -> str:
        return f"FilesystemDriver({os.fspath(self.root)!r})"


class ObjectStoreDriver(_CoreLinks):
    def __init__(self, store: _core.ObjectStore) -> None:
        self.store = store
        self._core = _core.Storage.on_object_store(store)

    @property
    def url(self) -> str:
        return self.store.url

    def read(self, key: str) -> bytes | None:
        return self.store.read(check_key(key))

    def write(self, key: str, data: bytes) -> None:
        self.store.write(check_key(key), data)

    def dirs_holding(self, base: str, marker: str) -> builtins.list[str]:
        # One listing of every object under base (as distribution's S3 catalog walks), which
        # also sees no prefix left behind empty.
        found = set()
        prefix = check_key(base) + "/"
        for key in self.store.walk(prefix):
            parts = key[len(prefix) :].split("/")
            for i, part in enumerate(parts[:-1]):
                if part.startswith("_"):
                    if part == marker and i > 0:
                        found.add("/".join(parts[:i]))
                    break
        return sorted(found)

    def delete_upload(self, key: str) -> bool:
        return self.store.delete_upload(check_key(key))

    def modified(self, key: str) -> float | None:
        found = self.store.stat(check_key(key))
        return found[1] if found is not None else None

    def blob_store(self) -> BlobStore:
        return BlobStore.on_object_store(self.store)

    def require_filesystem(self, what: str) -> Path:
        raise ErrUnsupported(f"{what} needs filesystem storage; {self.url} is object storage")

    def __repr__(self) -> str:
        return f"ObjectStoreDriver({self.url!r})"
