"""The OCI Distribution API v1.1 as a plain ASGI application over ``ocistore.Registry``.

Request bodies stream into the blob writer through ``ocistore.aio`` (two blocks of
``aio.STREAM_BLOCK`` bytes, the only memory an upload holds); storage calls run on worker
threads, except metadata lookups and writes of at most ``aio.INLINE_WRITE_MAX`` bytes on a local
filesystem, which take microseconds (less than a thread hop); blob GETs are read by the Rust
reader one block ahead of the socket, or redirected to object storage; upload
state lives in storage (disk or bucket), so any worker, instance or restarted server continues
a session.

This module puts the application together: routing (``routing``), the handlers of each
resource (``handlers/``), the front's protocol (``front_protocol``), and what they share
(``base``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ..storage import purge_uploads
from . import routing
from .auth import required_access
from .base import log
from .front_protocol import FRONT, FrontProtocolHandlers
from .handlers.blobs import BlobHandlers
from .handlers.listings import ListingHandlers
from .handlers.manifests import MANIFEST_LIMIT, ManifestHandlers
from .handlers.uploads import UploadHandlers
from .http import (
    ApiError,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    body_broke_off,
    error_response,
)

__all__ = ["MANIFEST_LIMIT", "RegistryApp"]

Handler = Callable[..., Awaitable[Response]]


class RegistryApp(
    FrontProtocolHandlers, ListingHandlers, ManifestHandlers, BlobHandlers, UploadHandlers
):
    """The ASGI application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = Request(scope, receive, self.config.body_idle_timeout_seconds or None)
        if (
            self.config.front_secret is not None
            and self._from_front(request, self.config.front_secret)
            and request.path.startswith(FRONT.PATH_PREFIX)
        ):
            if request.path == FRONT.OBSERVATIONS_PATH and request.method == "POST":
                await self._front_observations(request, send)
                return
            if request.path == FRONT.AUTHORIZE_PATH and request.method == "GET":
                await self._front_authorize(request, scope, send)
                return
        route_name, handler, params = self._route(request)
        try:
            if self.access_controller is not None and route_name != routing.NOT_FOUND:
                needed = required_access(route_name, request.method, params)
                request.identity = await self.access_controller.authorize(request, needed)
            response = await handler(request, **params)
        except ClientDisconnected:
            # A client that only closed its sending side (a half-close) still reads: it is told
            # why. Nothing of the request was stored (an upload keeps what arrived).
            response = error_response(body_broke_off(request.path))
            try:
                sent = await self._send(scope, send, request, response)
            except Exception:  # gone altogether: nobody to tell
                sent = 0
            self._finish(request, route_name, response.status, sent, started)
            return
        except Exception as error:  # every error becomes a spec error body
            response = error_response(error)
            if response.status >= 500:
                log.exception("internal error on %s %s", request.method, request.path)
            await request.drain()
        sent = await self._send(scope, send, request, response)
        self._finish(request, route_name, response.status, sent, started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.purge_enabled:
                    self._background = asyncio.create_task(self._purge_loop())
                if self.proxy is not None and (interval := self.proxy.expiry_interval()):
                    self._expiry = asyncio.create_task(self._expiry_loop(interval))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in (self._background, self._expiry):
                    if task is not None:
                        task.cancel()
                if self.proxy is not None:
                    await self.proxy.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _purge_loop(self) -> None:
        age = timedelta(seconds=self.config.purge_age_seconds)
        while True:
            try:
                removed = await asyncio.to_thread(
                    purge_uploads, self.registry, older_than=age, dry_run=self.config.purge_dry_run
                )
                for path in removed:
                    log.info("purged upload %s", path)
            except Exception:
                log.exception("upload purge failed")
            await asyncio.sleep(self.config.purge_interval_seconds)

    async def _expiry_loop(self, interval: float) -> None:
        """The pull-through cache's expiry and collection (``ocistore.proxy.expiry``), by one
        worker at a time."""
        assert self.proxy is not None
        while True:
            await asyncio.sleep(interval)
            try:
                done = await asyncio.to_thread(self.proxy.expire)
                if done is not None:
                    expired, collected = done
                    log.info(
                        "cache expiry: %d manifests and %d blob links expired, %d blobs deleted",
                        len(expired.manifests),
                        len(expired.blobs),
                        len(collected.deleted_blobs),
                    )
            except Exception:
                log.exception("cache expiry failed")

    def _route(self, request: Request) -> tuple[str, Handler, dict[str, str]]:
        raw = request.scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else request.path
        name, attribute, params = routing.match(path, request.method)
        if name == routing.NOT_FOUND:
            return name, self._not_found, {}
        if attribute is None:
            return name, self._method_not_allowed, {}
        handler: Handler = getattr(self, attribute)
        return name, handler, params

    async def _not_found(self, request: Request) -> Response:
        # Only spec codes in bodies: a path that names no endpoint names no repository either.
        raise ApiError(404, "NAME_UNKNOWN", f"no such endpoint: {request.path}")

    async def _method_not_allowed(self, request: Request) -> Response:
        raise ApiError(405, "UNSUPPORTED", f"{request.method} is not supported on {request.path}")
