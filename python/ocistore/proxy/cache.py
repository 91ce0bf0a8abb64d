"""The pull-through cache: what the registry answers when it is a proxy of other registries.

- **Upstream by ``ns``.** A request carrying the spec's ``ns`` query parameter goes to the
  upstream configured for that namespace (and is answered with ``OCI-Namespace``); one naming
  no configured upstream is ``NAME_UNKNOWN``, never a fetch from a host the client chose. A
  request without ``ns`` goes to the default upstream (``proxy.remoteurl``).
- **Manifests.** By digest: served from the cache once there, never asking the upstream again.
  By tag: the upstream is asked for the tag's digest (a HEAD) at most once per ``tagcheck``
  interval (the time of the last check is the tag link's modification time, which every worker
  sees); the cached manifest is served when it matches or when the upstream cannot be reached.
  The children of an index are fetched when they are asked for.
- **Blobs.** Fetched once (``ocistore.proxy.fetch``) and streamed to every client waiting for
  them; a HEAD of a blob not cached is answered from the upstream's HEAD without fetching it.
- **Listings.** Tags and referrers are asked of the upstream, and answered from the cache when
  it cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from .. import _core
from .._core import Digest, Layout
from ..errors import ErrManifestUnknown, ErrRepositoryUnknown, ErrTagUnknown, OciStoreError
from ..server.http import ApiError
from ..storage import Registry, parse_reference, unmarshal_manifest
from ..storage.manifests import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from .config import UpstreamConfig
from .expiry import ExpiryResult, expire_and_collect, touch
from .fetch import BlobFetches, FetchFailed, upstream_size
from .upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from ..server.metrics import Metrics
    from ..storage.gc import GCResult

__all__ = ["MANIFEST_ACCEPT", "PullThroughCache", "Selected"]

log = logging.getLogger("ocistore.proxy")

#: What the cache asks the upstream for: every manifest type it stores.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
#: Largest manifest taken from an upstream (as for a push).
MANIFEST_LIMIT = 4 * 1024 * 1024


def _manifest_request(
    selected: Selected, method: str, reference: str
) -> AbstractAsyncContextManager[httpx.Response]:
    return selected.upstream.request(
        method,
        f"/v2/{selected.name}/manifests/{reference}",
        name=selected.name,
        headers={"Accept": MANIFEST_ACCEPT},
        ns=selected.ns,
    )


def _fetch_error(failed: FetchFailed) -> ApiError:
    if failed.status == 404:
        return ApiError(404, "BLOB_UNKNOWN", str(failed))
    return ApiError(failed.status, "UNKNOWN", str(failed))


def _unreachable(error: Exception) -> ApiError:
    return ApiError(502, "UNKNOWN", f"the upstream cannot be reached: {error}")


class Selected:
    """The upstream a request goes to, and where its repository is cached."""

    def __init__(self, upstream: Upstream, name: str, ns: str | None) -> None:
        self.upstream = upstream
        self.name = name
        self.ns = ns
        self.storage_name = upstream.config.storage_prefix + name

    def headers(self) -> dict[str, str]:
        return {} if self.ns is None else {"OCI-Namespace": self.ns}


class PullThroughCache:
    def __init__(
        self,
        registry: Registry,
        root: Path,
        upstreams: list[UpstreamConfig],
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.root = root
        self.upstreams = [Upstream(config) for config in upstreams]
        self.default = next((u for u in self.upstreams if u.config.is_default), None)
        self.metrics = metrics
        self.fetches = BlobFetches(registry, root, metrics)

    def _count(self, selected: Selected, kind: str, hit: bool) -> None:
        if self.metrics is not None:
            self.metrics.proxy_request(selected.upstream.config.remoteurl, kind, hit)

    def _upstream_failed(self, selected: Selected) -> None:
        if self.metrics is not None:
            self.metrics.proxy_error(selected.upstream.config.remoteurl)

    def hit_manifest(self, selected: Selected, digest: Digest) -> None:
        """A manifest served from the cache: used now (``ocistore.proxy.expiry``)."""
        touch(self.root / Layout.revision_link(selected.storage_name, digest))

    def hit_blob(self, selected: Selected, digest: Digest) -> None:
        """A cached blob served: used now."""
        touch(self.root / Layout.layer_link(selected.storage_name, digest))
        self._count(selected, "blob", True)

    def miss_blob(self, selected: Selected) -> None:
        self._count(selected, "blob", False)

    def observed_blob(self, name: str, digest: Digest) -> None:
        """A blob GET the native front answered (it answers only hits of the default
        upstream's repositories, requests without ``ns``)."""
        if self.default is not None:
            self.hit_blob(Selected(self.default, name, None), digest)

    def expiry_interval(self) -> float | None:
        """How often expiry runs: a quarter of the shortest ttl, within a second and an hour;
        None when everything is kept for ever."""
        ttls = [u.config.ttl_seconds for u in self.upstreams if u.config.ttl_seconds > 0]
        return min(max(min(ttls) / 4, 1.0), 3600.0) if ttls else None

    def expire(self) -> tuple[ExpiryResult, GCResult] | None:
        return expire_and_collect(self.registry, [u.config for u in self.upstreams])

    async def aclose(self) -> None:
        for upstream in self.upstreams:
            await upstream.aclose()

    def select(self, name: str, ns: str | None) -> Selected:
        if ns is None:
            if self.default is None:
                raise ApiError(
                    404, "NAME_UNKNOWN", "this proxy needs the ns parameter to choose an upstream"
                )
            return Selected(self.default, name, None)
        for upstream in self.upstreams:
            if upstream.config.namespace == ns:
                return Selected(upstream, name, ns)
        if self.default is not None and ns == self.default.config.host:
            return Selected(self.default, name, ns)
        raise ApiError(404, "NAME_UNKNOWN", f"no upstream is configured for ns={ns!r}")

    # manifests

    def _tag_link(self, selected: Selected, tag: str) -> Path:
        return self.root / Layout.tag_current_link(selected.storage_name, tag)

    def _cached_tag(self, selected: Selected, tag: str) -> tuple[Digest, float] | None:
        """The cached digest of a tag, and how long ago the upstream was last asked."""
        repo = self.registry.repository(selected.storage_name)
        try:
            digest = repo.tags().resolve(tag)
            age = time.time() - self._tag_link(selected, tag).stat().st_mtime
        except (ErrTagUnknown, ErrRepositoryUnknown, ErrManifestUnknown, OSError):
            return None
        return digest, age

    def _checked(self, selected: Selected, tag: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self._tag_link(selected, tag))

    async def manifest_digest(self, selected: Selected, reference: str) -> Digest:
        """The digest of the manifest ``reference`` names, cached (fetched if need be)."""
        ref = parse_reference(reference)
        if isinstance(ref, Digest):
            cached = await asyncio.to_thread(self._has_manifest, selected, ref)
            self._count(selected, "manifest", cached)
            if not cached:
                await self._fetch_manifest(selected, str(ref), ref, None)
            return ref
        tagged = await asyncio.to_thread(self._cached_tag, selected, ref)
        if tagged is not None and tagged[1] < selected.upstream.config.tag_check_seconds:
            self._count(selected, "manifest", True)
            return tagged[0]
        try:
            upstream_digest = await self._head_manifest(selected, ref)
        except UpstreamError as unreachable:
            self._upstream_failed(selected)
            if tagged is not None:
                log.warning("serving cached %s:%s: %s", selected.name, ref, unreachable)
                self._count(selected, "manifest", True)
                return tagged[0]
            raise _unreachable(unreachable) from None
        if upstream_digest is None:
            raise ApiError(404, "MANIFEST_UNKNOWN", f"manifest unknown to upstream: {ref}")
        if tagged is not None and tagged[0] == upstream_digest:
            await asyncio.to_thread(self._checked, selected, ref)
            self._count(selected, "manifest", True)
            return tagged[0]
        if await asyncio.to_thread(self._has_manifest, selected, upstream_digest):
            repo = self.registry.repository(selected.storage_name)
            await asyncio.to_thread(repo.tags().tag, ref, upstream_digest)
            self._count(selected, "manifest", True)
            return upstream_digest
        self._count(selected, "manifest", False)
        return await self._fetch_manifest(selected, ref, upstream_digest, ref)

    def _has_manifest(self, selected: Selected, digest: Digest) -> bool:
        try:
            return self.registry.repository(selected.storage_name).manifests().exists(digest)
        except (ErrRepositoryUnknown, ErrManifestUnknown):
            return False

    async def _head_manifest(self, selected: Selected, tag: str) -> Digest | None:
        """The tag's digest upstream; None when the upstream does not have it."""
        async with _manifest_request(selected, "HEAD", tag) as r:
            if r.status_code == 404:
                return None
            if r.status_code != 200:
                raise UpstreamError(f"HEAD manifest {tag} answered {r.status_code}")
            found = r.headers.get("docker-content-digest")
        if found:
            return Digest(found)
        # No digest in the HEAD (allowed before the spec's next version): GET it.
        return await self._fetch_manifest(selected, tag, None, tag)

    async def _fetch_manifest(
        self, selected: Selected, reference: str, expected: Digest | None, tag: str | None
    ) -> Digest:
        """Fetches a manifest, checks it against its digest, caches it (tagged ``tag``)."""
        try:
            async with _manifest_request(selected, "GET", reference) as r:
                if r.status_code == 404:
                    raise ApiError(
                        404, "MANIFEST_UNKNOWN", f"manifest unknown to upstream: {reference}"
                    )
                if r.status_code != 200:
                    raise UpstreamError(f"GET manifest {reference} answered {r.status_code}")
                payload = await _read_limited(r)
                if payload is None:
                    raise ApiError(502, "MANIFEST_INVALID", "the upstream's manifest is too large")
                content_type = r.headers.get("content-type")
        except UpstreamError as unreachable:
            self._upstream_failed(selected)
            raise ApiError(502, "UNKNOWN", f"the upstream failed: {unreachable}") from None
        try:
            manifest, _ = unmarshal_manifest(content_type, payload)
        except OciStoreError as bad:
            raise ApiError(502, "MANIFEST_INVALID", f"the upstream's manifest: {bad}") from None
        if expected is not None:
            manifest = manifest.in_algorithm(expected.algorithm)
            if manifest.digest != expected:
                raise ApiError(
                    502,
                    "MANIFEST_INVALID",
                    f"the upstream's manifest for {reference} is {manifest.digest}, not {expected}",
                )
        repo = self.registry.repository(selected.storage_name)
        return await asyncio.to_thread(repo.manifests().put, manifest, tag=tag)

    # blobs

    def cached_blob(self, selected: Selected, digest: Digest) -> Digest | None:
        return self.fetches.published(selected.storage_name, digest)

    async def blob_size_upstream(self, selected: Selected, digest: Digest) -> int:
        """The size of a blob the cache does not have, from the upstream's HEAD."""
        try:
            return await upstream_size(selected.upstream, selected.name, digest, selected.ns)
        except FetchFailed as failed:
            raise _fetch_error(failed) from None

    async def blob_size_fetching(self, selected: Selected, digest: Digest) -> int:
        """Starts (or joins) the blob's fetch; its size once the upstream has answered."""
        up, name, storage = selected.upstream, selected.name, selected.storage_name
        self.fetches.ensure(up, name, storage, digest)
        try:
            return await self.fetches.wait_size(up, name, storage, digest)
        except FetchFailed as failed:
            raise _fetch_error(failed) from None

    async def blob_stream(
        self, selected: Selected, digest: Digest, start: int, length: int
    ) -> AsyncGenerator[bytes]:
        """The bytes as they arrive. The first are awaited here, so that a fetch failing before
        the answer begins is an error answer (404, 502), not a connection cut."""
        tail = self.fetches.tail(
            selected.upstream, selected.name, selected.storage_name, digest, start, length
        )
        try:
            first = await anext(tail, b"")
        except FetchFailed as failed:
            await tail.aclose()
            raise _fetch_error(failed) from None

        async def body() -> AsyncGenerator[bytes]:
            async with contextlib.aclosing(tail):
                if first:
                    yield first
                async for chunk in tail:
                    yield chunk

        return body()

    # listings

    async def referrers(
        self, selected: Selected, subject: Digest, artifact_type: str | None
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The upstream's referrers of ``subject`` (asked unfiltered, so that one copy kept
        serves every filter), filtered here; the copy kept from the last answer when the
        upstream cannot be reached; None when there is none (the cache's own then)."""
        path = f"/v2/{selected.name}/referrers/{subject}"
        kept = self.root / Layout.proxy_referrers(selected.storage_name, subject)
        got = await self.passthrough_json(selected, path, "")
        if got is not None and got[0] != 200:
            return got
        if got is not None:
            body = got[1]
            # Replaced whole; a copy lost with a power cut is fetched again.
            await asyncio.to_thread(_core.write_file_atomic, kept, body, durable=False)
        else:
            try:
                body = await asyncio.to_thread(kept.read_bytes)
            except OSError:
                return None
        headers = {"Content-Type": OCI_INDEX}
        if artifact_type is not None:
            index = json.loads(body)
            index["manifests"] = [
                m for m in index.get("manifests") or [] if m.get("artifactType") == artifact_type
            ]
            body = json.dumps(index).encode()
            headers["OCI-Filters-Applied"] = "artifactType"
        return 200, body, headers

    async def passthrough_json(
        self, selected: Selected, path: str, query: str
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The upstream's answer to a listing (status, body, headers to pass on), or None when
        it cannot be reached."""
        url = path + (f"?{query}" if query else "")
        try:
            async with selected.upstream.request(
                "GET", url, name=selected.name, ns=selected.ns
            ) as r:
                body = await _read_limited(r)
                if body is None or r.status_code >= 500:
                    return None
                passed = {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower() in ("content-type", "link", "oci-filters-applied")
                }
                if r.status_code == 200:
                    json.loads(body)  # a listing the client can read, or the cache's own
                return r.status_code, body, passed
        except (UpstreamError, ValueError) as unreachable:
            log.warning("listing %s from the cache: %s", path, unreachable)
            return None


async def _read_limited(response: httpx.Response) -> bytes | None:
    """An upstream answer's body, or None when it is larger than a manifest may be."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MANIFEST_LIMIT:
            return None
    return bytes(body)
