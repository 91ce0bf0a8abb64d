"""HTTP plumbing for the registry: requests, responses, errors, ranges, Accept, Link."""

from __future__ import annotations

import asyncio
import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    MutableMapping,
)
from dataclasses import dataclass, field
from typing import Any

from .. import _core
from .._core import Digest
from ..errors import ErrManifestVerification, OciStoreError
from .identity import Identity

__all__ = [
    "ApiError",
    "ByteRange",
    "Request",
    "Response",
    "accepts",
    "error_body",
    "error_response",
    "is_decimal",
    "parse_content_range",
    "parse_range",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """An error the API answers with directly (no storage exception behind it)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "SIZE_INVALID", f"request body larger than {limit} bytes")


class ClientDisconnected(Exception):
    pass


def body_broke_off(path: str) -> ApiError:
    """The answer to a request whose body ended before it was whole (the client closed its
    sending side, or the connection): a client error, as the native front answers it."""
    code, status = _core.broken_body_code(path)
    return ApiError(status, code, "the request body broke off before its end")


class BodyStalled(ApiError):
    """Nothing of the request body arrived for ``idle`` seconds. The native front answers the
    same (``idle::stalled_answer``)."""

    def __init__(self, idle: float) -> None:
        super().__init__(
            408,
            "UNKNOWN",
            f"the request body stalled: nothing arrived for {idle:g} s; "
            "what arrived of an upload is kept",
        )


class Request:
    """``body_idle``: seconds the body may send nothing before reading it raises BodyStalled
    (None: no limit); without it, a client gone without a word would hold an upload's lock
    until TCP noticed, perhaps never."""

    def __init__(self, scope: Scope, receive: Receive, body_idle: float | None = None) -> None:
        self.scope = scope
        self._receive = receive
        self._body_idle = body_idle
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        #: Every ``(key, value)`` of the query string, in order.
        #: Whether the request came through the native front (it carried the front's secret).
        self.via_front = False
        self.query_pairs = _core.query_pairs(scope.get("query_string", b"").decode("latin-1"))
        # The first value of a repeated parameter counts, as Go's FormValue reads it.
        self.query: dict[str, str] = {}
        for key, value in self.query_pairs:
            self.query.setdefault(key, value)
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope.get("headers", []):
            headers.setdefault(raw_name.decode("latin-1").lower(), []).append(
                raw_value.decode("latin-1")
            )
        self._headers = headers
        self.bytes_in = 0
        self.identity: Identity | None = None  # set by the access controller, when there is one
        self._done = False
        self._stalled = False

    def query_values(self, key: str) -> list[str]:
        """Every value of a repeated query parameter (``?tag=a&tag=b``), in order."""
        return [value for k, value in self.query_pairs if k == key]

    def header(self, name: str) -> str | None:
        values = self._headers.get(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return self._headers.get(name, [])

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ClientDisconnected if the client goes away first, and
        BodyStalled if it sends nothing for ``body_idle`` seconds (only time spent waiting for
        the client counts, not the consumer's between chunks)."""
        idle = self._body_idle
        if self._stalled:
            raise BodyStalled(idle or 0)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:
                while not self._done:
                    if idle is not None:
                        deadline.reschedule(loop.time() + idle)
                    message = await self._receive()
                    deadline.reschedule(None)
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnected
                    chunk = message.get("body", b"")
                    self._done = not message.get("more_body", False)
                    if chunk:
                        self.bytes_in += len(chunk)
                        yield chunk
        except TimeoutError:
            self._stalled = True
            raise BodyStalled(idle or 0) from None

    async def body(self, limit: int) -> bytes:
        parts = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(chunk)
        return b"".join(parts)

    async def drain(self) -> None:
        try:
            async for _ in self.stream():
                pass
        except (ClientDisconnected, BodyStalled):
            pass


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: A blob to send instead of ``body``: (digest, offset, length)
    file: tuple[Digest, int, int] | None = None
    #: A body that arrives as it is sent (a blob the pull-through cache is fetching), with
    #: ``Content-Length`` set; an error raised from it cuts the connection.
    stream: AsyncGenerator[bytes] | None = None


def error_body(errors: Iterable[tuple[str, str, Any]]) -> bytes:
    return json.dumps(
        {
            "errors": [
                {"code": code, "message": message, "detail": detail}
                for code, message, detail in errors
            ]
        }
    ).encode()


def error_response(error: BaseException) -> Response:
    if isinstance(error, ErrManifestVerification) and error.errors:
        body = error_body((e.code, e.message, e.detail) for e in error.errors)
        return Response(error.status, {"Content-Type": "application/json"}, body)
    if isinstance(error, ApiError):
        body = error_body([(error.code, error.message, error.detail)])
        return Response(error.status, {"Content-Type": "application/json", **error.headers}, body)
    if isinstance(error, OciStoreError):
        body = error_body([(error.code, error.message, error.detail)])
        return Response(error.status, {"Content-Type": "application/json"}, body)
    if isinstance(error, OSError):
        # The storage refused (a full disk, an I/O error, an object store answering an error);
        # the native front words it the same way.
        message = f"the registry's storage failed: {error.strerror or error}"
        body = error_body([("UNKNOWN", message, None)])
        return Response(500, {"Content-Type": "application/json"}, body)
    body = error_body([("UNKNOWN", "internal server error", None)])
    return Response(500, {"Content-Type": "application/json"}, body)


def is_decimal(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" and other digits ``int`` refuses."""
    return _core.is_decimal(text)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str, size: int) -> ByteRange | None:
    """A single ``bytes=`` range against a blob of ``size`` bytes (the core's grammar, which the
    native front serves ranges by).

    Returns None for a header that is not a single byte range (the whole blob is served, as
    RFC 9110 allows); raises ApiError 416 for a range that cannot be satisfied."""
    found = _core.byte_range(header, size)
    if found is None:
        return None
    start, length = found
    if length == 0:
        raise ApiError(
            416,
            "SIZE_INVALID",
            f"range {header!r} cannot be satisfied for a blob of {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return ByteRange(start, start + length - 1)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """``start-end`` (inclusive) as clients send it on PATCH; also ``bytes start-end/*``."""
    return _core.content_range(header)


def accepts(headers: list[str], media_type: str) -> bool:
    """Whether ``Accept`` headers admit ``media_type`` (no header admits everything): the
    core's rule, which the native front applies too."""
    return _core.accepts(headers, media_type)
