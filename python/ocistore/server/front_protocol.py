"""The application's half of the native front's private protocol (the other half, and the one
definition of its paths, headers and record, is the core's ``src/front/protocol.rs``, read here
through ``ocistore._core.FrontProtocol`` and ``read_front_records``)."""

from __future__ import annotations

import contextlib
import hmac
import time

from .. import _core
from .._core import Digest
from . import routing
from .auth import required_access
from .base import AppBase, log
from .http import (
    ApiError,
    Request,
    Scope,
    Send,
    error_response,
    is_decimal,
)

__all__ = ["FrontProtocolHandlers"]

FRONT = _core.FrontProtocol


class FrontProtocolHandlers(AppBase):
    """Requests that carry the front's secret: its grants and its observations."""

    def _from_front(self, request: Request, front_secret: str) -> bool:
        """Whether ``request`` came through the native front (it carries the front's secret);
        if so, the client's address is the one the front saw, not the unix socket's."""
        secret = request.header(FRONT.SECRET_HEADER)
        if secret is None or not hmac.compare_digest(secret, front_secret):
            return False
        request.via_front = True
        client = request.header(FRONT.CLIENT_HEADER)
        if client:
            host, _, port = client.rpartition(":")
            request.scope["client"] = (host.strip("[]"), int(port) if port.isdigit() else 0)
        body_bytes = request.header(FRONT.BODY_BYTES_HEADER)
        if body_bytes and is_decimal(body_bytes):
            request.bytes_in = int(body_bytes)  # a PUT whose body the front wrote
        return True

    async def _front_authorize(self, request: Request, scope: Scope, send: Send) -> None:
        """Whether the request's credentials may pull from repository ``name`` (or also push
        to it, with ``push=1``): 204 with the subject and how long the front may reuse the
        answer, or the access controller's refusal."""
        name = request.query.get("name", "")
        route, method = ("upload", "PATCH") if request.query.get("push") == "1" else ("blob", "GET")
        needed = required_access(route, method, {"name": name})
        try:
            if self.access_controller is None:
                identity = None
            else:
                identity = await self.access_controller.authorize(request, needed)
        except ApiError as refused:
            await self._send(scope, send, request, error_response(refused))
            return
        seconds = FRONT.GRANT_SECONDS_MAX
        if identity is not None and identity.expires_at is not None:
            seconds = max(0.0, min(seconds, identity.expires_at - time.time()))
        headers = [(FRONT.GRANT_SECONDS_HEADER.encode(), f"{seconds:.3f}".encode())]
        if identity is not None:
            headers.append((FRONT.USER_HEADER.encode(), identity.subject.encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _proxy_hit(self, route: str, method: str, path: str) -> None:
        """A cached blob the front served: a hit, which keeps it from expiring."""
        assert self.proxy is not None
        name, _, params = routing.match(path, method)
        if name == "blob" and "name" in params and "digest" in params:
            with contextlib.suppress(ValueError):
                self.proxy.observed_blob(params["name"], Digest(params["digest"]))

    async def _front_observations(self, request: Request, send: Send) -> None:
        """The requests the front answered itself (``_core.FrontRecord``s)."""
        try:
            body = await request.body(FRONT.BATCH_BYTES_MAX)
            records = _core.read_front_records(body)
            self.metrics.observe_many(
                (r.route, r.method, r.status, r.seconds, r.bytes_in, r.bytes_out) for r in records
            )
            for record in records:
                if self.config.access_log:
                    self._log_access(
                        record.route, record.method, record.path, record.status, record.seconds,
                        record.bytes_in, record.bytes_out, record.remote, record.user,
                    )  # fmt: skip
                if self.proxy is not None and record.status in (200, 206):
                    self._proxy_hit(record.route, record.method, record.path)
            status = 204
        except (ValueError, ApiError):
            log.exception("unreadable observations from the native front")
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
