"""distribution's ``BlobServer`` for ASGI: one blob answered on a GET or HEAD.

``await serve_blob(blobs, scope, receive, send, digest)`` writes the whole response, so another
ASGI application can route ``/v2/<name>/blobs/<digest>`` to it (``BlobStore.serve_blob`` and
``LinkedBlobStore.serve_blob`` call it with their own blobs). It answers as the registry does: a
single ``Range`` (206 with ``Content-Range``; 416 with ``Content-Range: bytes */<size>`` when it
cannot be met; several ranges get the whole blob), ``If-None-Match`` on the digest ``ETag`` (304),
``If-Range``, and errors in the distribution spec's JSON (404 ``BLOB_UNKNOWN``). The body is read
in ``BLOCK`` reads on worker threads, the next one while the current one is sent, so neither the
blob nor the event loop is held.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from . import _core
from ._core import Digest
from .descriptor import OCTET_STREAM, Descriptor
from .errors import OciStoreError
from .interfaces import AsgiReceive, AsgiScope, AsgiSend, ReadSeekCloser
from .server.http import ApiError, Request, Response, error_response, parse_range

__all__ = ["BLOCK", "CACHE_CONTROL", "ServableBlobs", "serve_blob"]

#: Bytes per read of the body: the core's block for blob GETs, which the registry reads in too.
BLOCK: int = _core.GET_READ_BLOCK
#: A blob never changes under its digest: caches may keep it for a year, as distribution says.
CACHE_CONTROL = "max-age=31536000"

DigestLike = Digest | str


class ServableBlobs(Protocol):
    """What serving needs of a blob store."""

    def stat(self, digest: DigestLike) -> Descriptor: ...
    def open(self, digest: DigestLike) -> ReadSeekCloser: ...


def _etag_matches(values: list[str], etag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches any blob.
    for header in values:
        for candidate in header.split(","):
            tag = candidate.strip()
            if tag == "*" or tag.removeprefix("W/") == etag:
                return True
    return False


async def serve_blob(
    blobs: ServableBlobs, scope: AsgiScope, receive: AsgiReceive, send: AsgiSend, digest: DigestLike
) -> None:
    """Answers the request in ``scope`` with the blob ``digest`` of ``blobs``."""
    request = Request(scope, receive)
    head = request.method == "HEAD"
    try:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(
                405,
                "UNSUPPORTED",
                f"{request.method} is not served for a blob; GET or HEAD it",
                headers={"Allow": "GET, HEAD"},
            )
        descriptor = await asyncio.to_thread(blobs.stat, Digest(digest))
        size = descriptor.size
        etag = f'"{descriptor.digest}"'
        headers = {
            "Content-Type": OCTET_STREAM,
            "Docker-Content-Digest": str(descriptor.digest),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": CACHE_CONTROL,
        }
        if _etag_matches(request.header_values("if-none-match"), etag):
            await _send_head(send, 304, headers)
            return
        range_header = request.header("range")
        if_range = request.header("if-range")
        if if_range is not None and if_range.strip() != etag:
            # The client's partial copy is of something else (or dated): send it all.
            range_header = None
        byte_range = parse_range(range_header, size) if range_header else None
        reader = await asyncio.to_thread(blobs.open, descriptor.digest)
    except (ApiError, OciStoreError, OSError) as error:
        await _send_error(send, error_response(error), head)
        return
    try:
        if byte_range is None:
            status, offset, length = 200, 0, size
        else:
            status, offset, length = 206, byte_range.start, byte_range.length
            headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        headers["Content-Length"] = str(length)
        await _send_head(send, status, headers, more_body=not head and length > 0)
        if not head and length > 0:
            await _send_body(send, reader, offset, length)
    finally:
        reader.close()


async def _send_head(
    send: AsgiSend, status: int, headers: dict[str, str], *, more_body: bool = False
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )
    if not more_body:
        await send({"type": "http.response.body", "body": b""})


async def _send_error(send: AsgiSend, response: Response, head: bool) -> None:
    headers = {**response.headers, "Content-Length": str(len(response.body))}
    await _send_head(send, response.status, headers, more_body=True)
    await send({"type": "http.response.body", "body": b"" if head else response.body})


async def _send_body(send: AsgiSend, reader: ReadSeekCloser, offset: int, length: int) -> None:
    end = offset + length

    def read(position: int) -> asyncio.Task[bytes]:
        return asyncio.ensure_future(
            asyncio.to_thread(reader.read_at, position, min(BLOCK, end - position))
        )

    position = offset
    pending: asyncio.Task[bytes] | None = read(position)
    try:
        while pending is not None:
            chunk = await pending
            pending = None
            if not chunk:
                break
            position += len(chunk)
            if position < end:
                pending = read(position)
            await send({"type": "http.response.body", "body": chunk, "more_body": position < end})
    finally:
        if pending is not None:
            # The send failed (the client left): let the read in flight finish before the
            # caller closes the reader under it.
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
    if position < end:
        # Shorter than its stat said, which a stored blob cannot be: end the body rather than
        # leave the client waiting for bytes that will not come.
        await send({"type": "http.response.body", "body": b"", "more_body": False})
