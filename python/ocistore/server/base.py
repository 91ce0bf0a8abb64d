"""What every part of the registry's ASGI application shares: its storage and configuration,
the helpers handlers use, and the writing of responses and of the access log. The handlers
live one file per resource in ``ocistore.server.handlers``, the routing table in
``ocistore.server.routing``, the front's protocol in ``ocistore.server.front_protocol``, and
``ocistore.server.app`` puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .. import _core
from .._core import Digest
from ..aio import READ_BLOCK, AsyncBlobStore, AsyncBlobWriter
from ..errors import (
    ErrBlobUploadInUse,
    ErrUnsupported,
)
from ..storage import LinkedBlobStore, Registry, Repository
from ..storage.driver import FilesystemDriver, ObjectStoreDriver
from ..storage.validation import ManifestValidation
from ..store import BlobWriter
from .auth import Access
from .auth import access_controller as make_access_controller
from .config import Config
from .http import (
    ApiError,
    Request,
    Response,
    Scope,
    Send,
)
from .metrics import Metrics

if TYPE_CHECKING:
    from ..proxy.cache import PullThroughCache, Selected

__all__ = ["AppBase"]

#: Reads of a blob GET larger than one ``READ_BLOCK``: the core's size, which the native front
#: reads in too.
GET_BLOCK: int = _core.GET_READ_BLOCK

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
log = logging.getLogger("ocistore.server")
access_log = logging.getLogger("ocistore.access")

_A = TypeVar("_A")
_R = TypeVar("_R")


def range_value(size: int) -> str:
    """An upload's ``Range`` header for ``size`` bytes received."""
    return f"0-{max(size - 1, 0)}"


def page_size(request: Request) -> int | None:
    """The pagination ``n`` (the core's grammar); 400 ``PAGINATION_NUMBER_INVALID`` if bad."""
    raw = request.query.get("n")
    try:
        return _core.page_size(raw)
    except ValueError:
        raise ApiError(400, "PAGINATION_NUMBER_INVALID", f"invalid page size n={raw!r}") from None


def digest_param(value: str | None, what: str = "digest") -> Digest:
    if not value:
        raise ApiError(400, "DIGEST_INVALID", f"the {what} parameter is required")
    return Digest(value)


class AppBase:
    """The application's state and shared helpers."""

    def __init__(self, config: Config) -> None:
        self.config = config
        driver = config.storage_driver()
        # A pull-through cache stores manifests before the blobs and children they name.
        validation = (
            ManifestValidation(index_children="none", blobs_required=False, urls_allow=None)
            if config.proxy
            else config.manifest_validation()
        )
        self.registry = Registry(
            driver,
            delete_enabled=config.delete_enabled,
            validation=validation,
            descriptor_cache=config.descriptor_cache(),
        )
        self.metrics = Metrics(self.registry)
        self.proxy: PullThroughCache | None = None
        if config.proxy:
            from ..proxy.cache import PullThroughCache
            from ..proxy.config import UpstreamConfig

            if not isinstance(driver, FilesystemDriver):
                raise ValueError("the pull-through cache needs filesystem storage")
            self.proxy = PullThroughCache(
                self.registry,
                driver.root,
                [UpstreamConfig(**u) for u in config.proxy],
                self.metrics,
            )
        # Whole blobs go out as files (zero-copy) from a filesystem; from object storage, by a
        # redirect to a presigned URL unless storage.redirect.disable, else streamed.
        self.local_files = isinstance(driver, FilesystemDriver)
        self.redirect_url: Callable[[Digest], str] | None = None
        if isinstance(driver, ObjectStoreDriver) and config.redirect:
            self.redirect_url = driver.store.blob_redirect_url
        self.access_controller = make_access_controller(config.auth)
        self._extra_headers = [
            (name, value) for name, values in config.headers.items() for value in values
        ]
        self._background: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None

    async def _send(self, scope: Scope, send: Send, request: Request, response: Response) -> int:
        headers = [API_VERSION, *self._extra_headers, *response.headers.items()]
        head = request.method == "HEAD"
        if response.stream is not None:
            return await self._send_stream(send, headers, response, head)
        if response.file is None:
            if "Content-Length" not in response.headers:
                headers.append(("Content-Length", str(len(response.body))))
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers],
                }
            )
            body = b"" if head else response.body
            await send({"type": "http.response.body", "body": body})
            return len(body)
        digest, offset, length = response.file
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        if head or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return 0
        if length <= READ_BLOCK:
            # A range of one block (the common ranged GET): opened and read in one thread hop.
            body = await asyncio.to_thread(self._read_range, digest, offset, length)
            await send({"type": "http.response.body", "body": body})
            return len(body)
        # Read by the Rust reader, one block ahead of the socket. Faster than granian's
        # pathsend, which reads 128 KiB at a time through tokio's blocking pool: a 1 GiB GET
        # to curl 1.0 GB/s with pathsend, 1.7-2.0 GB/s so (2 MiB blocks; 1, 4 and 8 MiB and
        # two reads ahead were slower on this 2-core VM).
        reader = await AsyncBlobStore(self.registry.blobs()).open(digest)
        sent = 0
        async with (
            reader,
            contextlib.aclosing(reader.iter_range(offset, length, block=GET_BLOCK)) as chunks,
        ):
            async for chunk in chunks:
                sent += len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": sent < length}
                )
        if sent < length:
            # Cannot happen for an immutable blob; end the body rather than hang the client.
            await send({"type": "http.response.body", "body": b""})
        return sent

    async def _send_stream(
        self, send: Send, headers: list[tuple[str, str]], response: Response, head: bool
    ) -> int:
        """A body that arrives as it is sent. An error from it ends the connection before the
        announced length, so the client sees a broken transfer, never a short valid body."""
        assert response.stream is not None
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        sent = 0
        async with contextlib.aclosing(response.stream) as chunks:
            if head:
                await send({"type": "http.response.body", "body": b""})
                return 0
            async for chunk in chunks:
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return sent

    def _read_range(self, digest: Digest, offset: int, length: int) -> bytes:
        with self.registry.blobs().open(digest) as reader:
            return reader.read_at(offset, length)

    def _finish(self, request: Request, route: str, status: int, sent: int, started: float) -> None:
        """One request into the metrics and the access log."""
        elapsed = time.perf_counter() - started
        self.metrics.observe(route, request.method, status, elapsed, request.bytes_in, sent)
        if self.config.access_log:
            self._log_access(
                route,
                request.method,
                request.path,
                status,
                elapsed,
                request.bytes_in,
                sent,
                (request.scope.get("client") or ["", 0])[0],
                request.identity.subject if request.identity else None,
            )

    def _log_access(
        self,
        route: str,
        method: str,
        path: str,
        status: int,
        elapsed: float,
        bytes_in: int,
        bytes_out: int,
        remote: str,
        user: str | None,
    ) -> None:
        access_log.info(
            "%s %s %d",
            method,
            path,
            status,
            extra={
                "fields": {
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "bytes_in": bytes_in,
                    "bytes_out": bytes_out,
                    "remote": remote,
                    "user": user,
                }
            },
        )

    def _repository(self, name: str) -> Repository:
        return self.registry.repository(name)

    def _check_writable(self) -> None:
        if self.config.readonly:
            raise ErrUnsupported("the registry is in read-only mode")
        if self.proxy is not None:
            raise ErrUnsupported("the registry is a pull-through cache: it cannot be pushed to")

    def _proxied(self, request: Request, name: str) -> Selected | None:
        """Where a read goes when the registry is a pull-through cache; None otherwise."""
        if self.proxy is None:
            return None
        return self.proxy.select(name, request.query.get("ns") or None)

    async def _claim(self, blobs: LinkedBlobStore, name: str, upload_id: str) -> BlobWriter:
        """The upload, held for this request (the core's claim: one request at a time per
        upload, across workers and processes; on object storage the upload's state object is
        written conditionally instead, so a second writer fails at its checkpoint)."""
        try:
            return await asyncio.to_thread(blobs.claim, upload_id)
        except ErrBlobUploadInUse as busy:
            size = busy.detail["size"]
            headers = {"Range": range_value(size), "Docker-Upload-UUID": upload_id}
            raise ApiError(busy.status, busy.code, busy.message, headers=headers) from None

    async def _lookup(self, fn: Callable[[_A], _R], arg: _A) -> _R:
        """A metadata lookup (a link read and a stat): inline on a local filesystem, where it
        takes microseconds and a thread hop would cost more than the work; on a worker thread
        when it means a network round trip."""
        if self.local_files:
            return fn(arg)
        return await asyncio.to_thread(fn, arg)

    def _may_mount_from(self, request: Request, source: str | None) -> bool:
        identity = request.identity
        if identity is None or identity.grants is None:
            return True  # no auth, or an identity that may do anything
        # Mounting "from anywhere" would link blobs of repositories the caller cannot read.
        return source is not None and identity.allows(Access("repository", source, "pull"))

    async def _stream_into(self, request: Request, writer: BlobWriter) -> None:
        """The request body into ``writer`` (see ``AsyncBlobWriter.write_stream``: two blocks of
        ``STREAM_BLOCK`` bytes, the most an upload holds in memory)."""
        await AsyncBlobWriter(writer).write_stream(request.stream())

    def _upload_headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": range_value(size),
            "Docker-Upload-UUID": upload_id,
        }
