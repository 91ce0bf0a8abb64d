"""Garbage collection and upload purging, safe while pushes continue.

The protocol:

1. The collector notes the time ``t0`` and computes ``cutoff = t0 - min_age - SLACK``.
2. Mark: every manifest revision in every repository is marked with what it references (config,
   layers, child manifests). With ``delete_untagged``, revisions that no tag reaches (directly,
   through an index, or as a referrer of a reached manifest) are deleted instead, under the
   exclusive lock, if their link is older than ``cutoff`` and still no tag points at them.
3. Sweep: every blob not marked is deleted under the exclusive lock, after checking once more
   that its data file's modification time is older than ``cutoff``.

Pushes refresh the modification time of what they make referenced (a committed or mounted blob,
each blob and child manifest a manifest put verifies, the manifest itself) and do so under the
shared lock, together with writing the links. So a blob is either deleted before a push looks at
it (and the push is refused with ``MANIFEST_BLOB_UNKNOWN``, nothing half-stored), or the push
refreshed it and the collector's second look keeps it. ``min_age`` (default one hour) protects
blobs uploaded for an image whose manifest has not arrived yet; ``SLACK`` covers file systems
whose timestamps lag the clock by a tick.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .._core import Digest, Layout
from ..errors import ErrBlobUnknown, OciStoreError
from .driver import StorageDriver
from .links import parse_link, read_link
from .manifests import ImageIndex
from .registry import Registry
from .repository import Repository

__all__ = [
    "DEFAULT_MIN_AGE",
    "GCResult",
    "GarbageCollector",
    "collect_garbage",
    "purge_uploads",
]

DEFAULT_MIN_AGE = timedelta(hours=1)
SLACK = 1.0


@dataclass
class GCResult:
    marked: set[Digest] = field(default_factory=set)
    deleted_blobs: list[Digest] = field(default_factory=list)
    deleted_manifests: list[tuple[str, Digest]] = field(default_factory=list)
    kept_recent: list[Digest] = field(default_factory=list)
    unreadable: list[tuple[str, Digest, str]] = field(default_factory=list)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _reachable(repo: Repository) -> set[Digest]:
    """Manifests reached from tags, through indexes, and referrers of reached manifests."""
    manifests = repo.manifests()
    tags = repo.tags()
    reached: set[Digest] = set()
    pending = []
    root = repo.registry.driver.require_filesystem("garbage collection")
    for tag in tags.all():
        digest = read_link(root / Layout.tag_current_link(repo.name, tag))
        if digest is not None:
            pending.append(digest)
    while pending:
        digest = pending.pop()
        if digest in reached:
            continue
        reached.add(digest)
        try:
            manifest = manifests.get(digest)
        except OciStoreError:
            continue
        if isinstance(manifest, ImageIndex):
            pending.extend(child.digest for child in manifest.manifests)
        pending.extend(entry.digest for entry in repo.referrers(digest).manifests)
    return reached


class GarbageCollector:
    """One collection, in two phases: ``mark()`` then ``sweep()`` (``run()`` does both)."""

    def __init__(
        self,
        registry: Registry,
        *,
        dry_run: bool = False,
        delete_untagged: bool = False,
        min_age: timedelta = DEFAULT_MIN_AGE,
        log: Callable[[str], object] | None = None,
    ) -> None:
        # The protocol stands on flock and modification times, which object storage lacks.
        registry.driver.require_filesystem("garbage collection")
        self.registry = registry
        self.dry_run = dry_run
        self.delete_untagged = delete_untagged
        self.say = log or (lambda _message: None)
        self.cutoff = time.time() - min_age.total_seconds() - SLACK
        self.result = GCResult()

    def run(self) -> GCResult:
        self.mark()
        self.sweep()
        if not self.dry_run:
            self.prune_aliases()
        return self.result

    def prune_aliases(self) -> None:
        """Removes the global aliases (``Layout.blob_alias``) whose bytes are gone: a sha512
        digest's record of the sha256 its blob is stored under, left behind when the collector
        deletes that blob. Under the exclusive lock, checked again there: a commit rewrites its
        alias after publishing, under the shared lock."""
        driver, base = self.registry.driver, Layout.blob_aliases()
        for alg in driver.list(base):
            for hex_ in driver.list(f"{base}/{alg}"):
                key = f"{base}/{alg}/{hex_}"
                with self.registry.gc_lock(exclusive=True):
                    target = parse_link(driver.read(f"{key}/{Layout.LINK}"))
                    if target is not None and driver.exists(Layout.blob_data(target)):
                        continue
                    self.say(f"removing alias {alg}:{hex_}")
                    driver.delete(key)

    def mark(self) -> None:
        registry, result = self.registry, self.result
        for name in registry.repositories():
            repo = registry.repository(name)
            manifests = repo.manifests()
            reachable = _reachable(repo) if self.delete_untagged else set()
            for digest in list(manifests.enumerate()):
                if (
                    self.delete_untagged
                    and digest not in reachable
                    and self._delete_untagged(repo, digest)
                ):
                    continue
                result.marked.add(digest)
                try:
                    manifest = manifests.get(digest)
                except OciStoreError as e:
                    result.unreadable.append((name, digest, str(e)))
                    self.say(f"{name}: cannot read manifest {digest}: {e}")
                    continue
                for ref in manifest.references():
                    result.marked.add(ref.digest)
                    # Bytes kept under another digest (distribution's alias links) are in use
                    # too.
                    with contextlib.suppress(OciStoreError):
                        result.marked.add(repo.blobs().resolve(ref.digest))

    def _delete_untagged(self, repo: Repository, digest: Digest) -> bool:
        root = self.registry.driver.require_filesystem("garbage collection")
        link = root / Layout.revision_link(repo.name, digest)
        with self.registry.gc_lock(exclusive=True):
            mtime = _mtime(link)
            if mtime is None or mtime >= self.cutoff or repo.tags().lookup(digest):
                return False
            self.say(f"{repo.name}: deleting untagged manifest {digest}")
            self.result.deleted_manifests.append((repo.name, digest))
            if not self.dry_run:
                repo.manifests().delete(digest)
            return True

    def sweep(self) -> None:
        blobs = self.registry.blobs()
        for digest in list(blobs.enumerate()):
            if digest in self.result.marked:
                continue
            data = Path(blobs.path(digest))
            with self.registry.gc_lock(exclusive=True):
                mtime = _mtime(data)
                if mtime is None:
                    continue
                if mtime >= self.cutoff:
                    self.result.kept_recent.append(digest)
                    continue
                self.say(f"deleting blob {digest}")
                self.result.deleted_blobs.append(digest)
                if not self.dry_run:
                    if self.registry.descriptor_cache is not None:
                        # Before the bytes go: no instance answers for them afterwards.
                        self.registry.descriptor_cache.forget_blob(digest)
                    with contextlib.suppress(ErrBlobUnknown):
                        blobs.delete(digest)


def collect_garbage(
    registry: Registry,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    min_age: timedelta = DEFAULT_MIN_AGE,
    log: Callable[[str], object] | None = None,
) -> GCResult:
    """Marks from every manifest (and, with ``delete_untagged``, deletes manifests no tag
    reaches), then sweeps unreferenced blobs older than ``min_age``."""
    return GarbageCollector(
        registry, dry_run=dry_run, delete_untagged=delete_untagged, min_age=min_age, log=log
    ).run()


def _started_at(driver: StorageDriver, upload: str) -> datetime | None:
    try:
        started_at = driver.read(f"{upload}/{Layout.UPLOAD_STARTED_AT}") or b""
        started = datetime.fromisoformat(started_at.decode())
    except (UnicodeDecodeError, ValueError):
        # Unreadable: the upload's own age decides (a directory's, or on object storage,
        # where prefixes have none, its startedat object's).
        mtime = driver.modified(upload) or driver.modified(f"{upload}/{Layout.UPLOAD_STARTED_AT}")
        return datetime.fromtimestamp(mtime, UTC) if mtime is not None else None
    return started if started.tzinfo else started.replace(tzinfo=UTC)


def purge_uploads(
    registry: Registry,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """Removes uploads started more than ``older_than`` ago (``startedat``; the upload's
    modification time when that is unreadable). Returns the keys of what was (or would be)
    removed."""
    limit = (now or datetime.now(UTC)) - older_than
    driver = registry.driver
    removed = []
    for uploads in registry.upload_dirs():
        for entry in driver.list(uploads):
            upload = f"{uploads}/{entry}"
            started = _started_at(driver, upload)
            if started is not None and started < limit:
                removed.append(upload)
                if not dry_run:
                    driver.delete(upload)
    return removed
