"""Garbage collection and upload purging, safe while pushes continue, on any storage.

The protocol (one owner of its rules for pushes and the collector: the core's ``LinkStore``,
``crate::store::links`` on a filesystem and ``crate::objstore::gc`` on object storage):

1. The collector takes the storage's **lease** (one collector at a time; a second one waits
   with ``wait`` or fails with ``ErrCollectorBusy``) and reads the storage's clock ``t0``:
   ``cutoff = t0 - min_age - SLACK``.
2. **Mark**: every manifest revision in every repository is marked with what it references
   (config, layers, child manifests). With ``delete_untagged``, revisions that no tag reaches
   (directly, through an index, or as a referrer of a reached manifest) are deleted instead if
   their link was last written or marked before ``cutoff`` and still no tag points at them.
3. **Sweep**: every blob not marked is deleted if its data was last written or marked before
   ``cutoff``; global aliases whose bytes are gone go too.

Every delete happens under a **claim** on the object (``Storage.gc_claim``) and after reading
its mark under it. Pushes **mark** what they make referenced (a committed or mounted blob,
each blob and child manifest a manifest put verifies, the manifest itself, a tagged manifest)
before they check it is there. On a filesystem the claim is the exclusive GC lock and the mark
the file's modification time, refreshed under the shared lock. On object storage the mark is
an object of its own, written before the push looks for a claim, and the claim an object
written before the collector reads the marks: either the collector sees the mark and keeps
the object, or the push sees the claim, waits for the verdict and finds the object gone (and
is refused, ``MANIFEST_BLOB_UNKNOWN``, nothing half-stored) or kept. ``min_age`` (default one
hour) protects blobs uploaded for an image whose manifest has not arrived yet; ``SLACK``
covers timestamps of one-second resolution.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .._core import Digest, GcClaim, GcLease, Layout
from ..errors import ErrBlobUnknown, ErrCollectorBusy, ErrCollectorLeaseLost, OciStoreError
from ..progress import ProgressSink, counted
from .driver import StorageDriver
from .links import parse_link
from .manifests import ImageIndex
from .registry import Registry
from .repository import Repository

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MIN_AGE",
    "GCResult",
    "GarbageCollector",
    "collect_garbage",
    "purge_uploads",
]

DEFAULT_MIN_AGE = timedelta(hours=1)
#: How long a collector's lease on object storage lasts unrenewed: a collector that dies holds
#: others off this long.
DEFAULT_LEASE_TTL = timedelta(minutes=1)
SLACK = 1.0


@dataclass
class GCResult:
    marked: set[Digest] = field(default_factory=set)
    deleted_blobs: list[Digest] = field(default_factory=list)
    deleted_manifests: list[tuple[str, Digest]] = field(default_factory=list)
    kept_recent: list[Digest] = field(default_factory=list)
    unreadable: list[tuple[str, Digest, str]] = field(default_factory=list)
    removed_aliases: list[str] = field(default_factory=list)


def _reachable(repo: Repository) -> set[Digest]:
    """Manifests reached from tags, through indexes, and referrers of reached manifests."""
    manifests = repo.manifests()
    driver = repo.registry.driver
    reached: set[Digest] = set()
    pending = []
    for tag in repo.tags().all():
        digest = parse_link(driver.read(Layout.tag_current_link(repo.name, tag)))
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


def collector_name() -> str:
    """Who a collector is, in the lease, for the message another one gives."""
    return f"ocistore gc on {socket.gethostname()} (pid {os.getpid()}, {uuid.uuid4().hex[:8]})"


class GarbageCollector:
    """One collection, in two phases: ``mark()`` then ``sweep()`` (``run()`` does both and
    releases the lease; after calling the phases directly, call ``release()``)."""

    def __init__(
        self,
        registry: Registry,
        *,
        dry_run: bool = False,
        delete_untagged: bool = False,
        min_age: timedelta = DEFAULT_MIN_AGE,
        wait: float = 0.0,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        log: Callable[[str], object] | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        self.registry = registry
        self.progress = progress
        self.lease_ttl = lease_ttl
        self.dry_run = dry_run
        self.delete_untagged = delete_untagged
        self.min_age = min_age
        self.wait = wait
        self.say = log or (lambda _message: None)
        self.result = GCResult()
        self._lease: GcLease | None = None
        self.cutoff = 0.0

    def acquire(self) -> None:
        """Takes the storage's lease (waiting up to ``wait`` seconds for another collector to
        finish) and sets the cutoff from the storage's clock."""
        if self._lease is not None:
            return
        deadline = time.monotonic() + self.wait
        owner = collector_name()
        ttl = self.lease_ttl.total_seconds()
        while isinstance(lease := self.registry.driver.gc_lease(owner, ttl), str):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ErrCollectorBusy(
                    f"another garbage collector is running on {self.registry.driver.url}: "
                    f"{lease}; try again later (or wait for it with --wait)",
                    detail={"holder": lease},
                )
            time.sleep(min(2.0, left))
        self._lease = lease
        self.cutoff = lease.started_at - self.min_age.total_seconds() - SLACK

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _held(self) -> GcLease:
        self.acquire()
        assert self._lease is not None
        if not self._lease.renew() or not self._lease.holds():
            raise ErrCollectorLeaseLost(
                f"the garbage collector lost its lease on {self.registry.driver.url} (it "
                "could not renew it in time, or another collector took it over); it stopped "
                "deleting: run it again"
            )
        return self._lease

    def _may_delete(self, claim: GcClaim, what: str) -> bool:
        """The last look before a delete: the lease is still ours and the claim still holds."""
        self._held()
        if claim.holds():
            return True
        self.say(f"keeping {what}: its claim lapsed before the delete (slow storage)")
        return False

    def run(self) -> GCResult:
        try:
            self.mark()
            self.sweep()
            if not self.dry_run:
                self.prune_aliases()
        finally:
            self.release()
        return self.result

    def prune_aliases(self) -> None:
        """Removes the global aliases (``Layout.blob_alias``) whose bytes are gone: a sha512
        digest's record of the sha256 its blob is stored under, left behind when the collector
        deletes that blob. A commit marks its alias before it looks at it."""
        driver, base = self.registry.driver, Layout.blob_aliases()
        for alg in driver.list(base):
            for hex_ in driver.list(f"{base}/{alg}"):
                key = f"{base}/{alg}/{hex_}/{Layout.LINK}"
                with driver.gc_claim(key) as claim:
                    marked = claim.marked_at()
                    if marked is None or marked >= self.cutoff:
                        continue
                    target = parse_link(driver.read(key))
                    if target is not None and driver.exists(Layout.blob_data(target)):
                        continue
                    if not self._may_delete(claim, f"alias {alg}:{hex_}"):
                        continue
                    self.say(f"removing alias {alg}:{hex_}")
                    self.result.removed_aliases.append(f"{alg}:{hex_}")
                    driver.delete(f"{base}/{alg}/{hex_}")
                    claim.forget()

    def mark(self) -> None:
        registry, result = self.registry, self.result
        self._held()
        for name in counted(
            list(registry.repositories()), self.progress, "gc: marking", "repositories"
        ):
            self._held()  # renewed as it goes: a mark phase may outlast the lease's term
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
        with self.registry.driver.gc_claim(Layout.revision_link(repo.name, digest)) as claim:
            marked = claim.marked_at()
            if marked is None or marked >= self.cutoff or repo.tags().lookup(digest):
                return False
            if not self._may_delete(claim, f"{repo.name}@{digest}"):
                return False
            self.say(f"{repo.name}: deleting untagged manifest {digest}")
            self.result.deleted_manifests.append((repo.name, digest))
            if not self.dry_run:
                repo.manifests().delete(digest)
                claim.forget()
            return True

    def sweep(self) -> None:
        blobs, driver = self.registry.blobs(), self.registry.driver
        self._held()
        for digest in counted(list(blobs.enumerate()), self.progress, "gc: sweeping", "blobs"):
            if digest in self.result.marked:
                continue
            with driver.gc_claim(Layout.blob_data(digest)) as claim:
                marked = claim.marked_at()
                if marked is None:
                    continue
                if marked >= self.cutoff:
                    self.result.kept_recent.append(digest)
                    continue
                if not self._may_delete(claim, f"blob {digest}"):
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
                    claim.forget()


def collect_garbage(
    registry: Registry,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    min_age: timedelta = DEFAULT_MIN_AGE,
    wait: float = 0.0,
    lease_ttl: timedelta = DEFAULT_LEASE_TTL,
    log: Callable[[str], object] | None = None,
    progress: ProgressSink | None = None,
) -> GCResult:
    """Marks from every manifest (and, with ``delete_untagged``, deletes manifests no tag
    reaches), then sweeps unreferenced blobs older than ``min_age``. ``ErrCollectorBusy`` when
    another collector holds the lease for longer than ``wait`` seconds."""
    return GarbageCollector(
        registry,
        dry_run=dry_run,
        delete_untagged=delete_untagged,
        min_age=min_age,
        wait=wait,
        lease_ttl=lease_ttl,
        log=log,
        progress=progress,
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
    modification time when that is unreadable), as cancelling them does: on object storage their
    multipart uploads are aborted too. Returns the keys of what was (or would be) removed."""
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
                    driver.delete_upload(upload)
    return removed
