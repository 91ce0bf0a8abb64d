"""Expiry of a pull-through cache's content, without losing any.

What a cached repository holds lives for its upstream's ``ttl`` after it was last used: every
hit refreshes it (the modification time of its link: a manifest's revision link, a blob's
``_layers`` link; hits the native front answers reach the application in its observation
records). Expiry removes what a repository has not used for longer, the manifest (with its
tags) or the link; it never deletes bytes. The garbage collector does, by its protocol: a blob
another cached repository's manifest still references is marked and kept, so a blob shared by
several cached repositories goes only when none refers to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .._core import Digest, Layout
from ..errors import ErrCollectorBusy, OciStoreError
from ..storage import Registry
from ..storage.gc import DEFAULT_MIN_AGE, GCResult, collect_garbage
from .config import UpstreamConfig

__all__ = ["ExpiryResult", "expire_and_collect", "expire_cache", "touch", "ttl_for"]


@dataclass
class ExpiryResult:
    manifests: list[tuple[str, Digest]] = field(default_factory=list)
    blobs: list[tuple[str, Digest]] = field(default_factory=list)


def ttl_for(name: str, upstreams: list[UpstreamConfig]) -> float:
    """The ttl of the upstream a stored repository was cached from (the longest matching
    namespace prefix, else the default upstream); 0 keeps it."""
    best: UpstreamConfig | None = None
    for upstream in upstreams:
        prefix = upstream.storage_prefix
        longer = best is None or len(prefix) > len(best.storage_prefix)
        if prefix and name.startswith(prefix) and longer:
            best = upstream
    if best is None:
        best = next((u for u in upstreams if u.is_default), None)
    return 0.0 if best is None else best.ttl_seconds


def touch(path: Path) -> None:
    """A hit: the link's modification time is now (a link gone meanwhile is no hit)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _age(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return None


def expire_cache(
    registry: Registry,
    upstreams: list[UpstreamConfig],
    *,
    now: float | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> ExpiryResult:
    """Removes the manifests and blob links cached repositories have not used within their
    ttl. ``registry`` must allow deletes. Run the garbage collector after it for the bytes."""
    now = time.time() if now is None else now
    root = registry.driver.require_filesystem("cache expiry")
    result = ExpiryResult()
    names = sorted(set(registry.walk("_manifests")) | set(registry.walk("_layers")))
    for name in names:
        ttl = ttl_for(name, upstreams)
        if ttl <= 0:
            continue
        repo = registry.repository(name)
        manifests, blobs = repo.manifests(), repo.blobs()
        for what, digests, link, remove, expired in (
            ("manifest", manifests.enumerate(), Layout.revision_link, manifests.delete,
             result.manifests),
            ("blob link", blobs.enumerate(), Layout.layer_link, blobs.delete, result.blobs),
        ):  # fmt: skip
            for digest in list(digests):
                age = _age(root / link(name, digest), now)
                if age is None or age <= ttl:
                    continue
                if log is not None:
                    log(f"expired {what} {name}@{digest}")
                expired.append((name, digest))
                if not dry_run:
                    with contextlib.suppress(OciStoreError):
                        remove(digest)
    return result


def expire_and_collect(
    registry: Registry,
    upstreams: list[UpstreamConfig],
    *,
    min_age: timedelta = DEFAULT_MIN_AGE,
    log: Callable[[str], None] | None = None,
) -> tuple[ExpiryResult, GCResult] | None:
    """One round: expiry, then the garbage collector for the bytes nothing refers to any more.
    None when another process is at it (the round is theirs)."""
    root = registry.driver.require_filesystem("cache expiry")
    lock_path = root / Layout.proxy_expiry_lock()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        deleting = Registry(
            root,
            delete_enabled=True,
            validation=registry.validation,
            descriptor_cache=registry.descriptor_cache,
        )
        expired = expire_cache(deleting, upstreams, log=log)
        try:
            collected = collect_garbage(deleting, min_age=min_age, log=log)
        except ErrCollectorBusy:
            return None  # an operator's `ocistore gc` is at it: the round is theirs
        return expired, collected
