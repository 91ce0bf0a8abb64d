"""Blobs: GET and HEAD (ranges, ``If-None-Match``, redirects on object storage), DELETE."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..._core import Digest
from ..._core import FrontProtocol as FRONT
from ..base import AppBase
from ..http import (
    Request,
    Response,
    parse_range,
)

if TYPE_CHECKING:
    from ...proxy.cache import Selected

__all__ = ["BlobHandlers"]


class BlobHandlers(AppBase):
    """``/v2/<name>/blobs/<digest>``."""

    async def get_blob(self, request: Request, name: str, digest: str) -> Response:
        parsed = Digest(digest)
        extra: dict[str, str] = {}
        selected = self._proxied(request, name)
        if selected is not None:
            assert self.proxy is not None
            extra = selected.headers()
            if await asyncio.to_thread(self.proxy.cached_blob, selected, parsed) is None:
                self.proxy.miss_blob(selected)
                return await self._fetched_blob(request, selected, parsed)
            await asyncio.to_thread(self.proxy.hit_blob, selected, parsed)
            name = selected.storage_name
        blobs = self._repository(name).blobs()
        # The bytes may live under another digest (distribution's alias links); the answer
        # names the digest asked for.
        stored, size = await self._lookup(blobs.lookup, parsed)
        etag = f'"{parsed}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": str(parsed),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
            **extra,
        }
        if etag in [
            t.strip() for h in request.header_values("if-none-match") for t in h.split(",")
        ]:
            return Response(304, headers)
        range_header = request.header("range")
        byte_range = parse_range(range_header, size) if range_header else None
        if self.redirect_url is not None and request.method == "GET":
            url = await asyncio.to_thread(self.redirect_url, stored)
            return Response(307, {**headers, "Location": url})
        if byte_range is None:
            headers["Content-Length"] = str(size)
            return Response(200, headers, file=(stored, 0, size))
        headers["Content-Length"] = str(byte_range.length)
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        return Response(206, headers, file=(stored, byte_range.start, byte_range.length))

    async def _fetched_blob(self, request: Request, selected: Selected, digest: Digest) -> Response:
        """A blob the pull-through cache does not have: a HEAD is answered from the upstream's
        HEAD; a GET joins (or starts) the one fetch of it and streams as it arrives."""
        assert self.proxy is not None
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": str(digest),
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
            **selected.headers(),
        }
        if request.method == "HEAD":
            size = await self.proxy.blob_size_upstream(selected, digest)
            return Response(200, {**headers, "Content-Length": str(size)})
        size = await self.proxy.blob_size_fetching(selected, digest)
        range_header = request.header("range")
        byte_range = parse_range(range_header, size) if range_header else None
        if byte_range is None:
            start, length, status = 0, size, 200
        else:
            start, length, status = byte_range.start, byte_range.length, 206
            headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        if request.via_front:
            # The front sends the body itself, from the fetch's upload as it grows.
            order = FRONT.tail_order(selected.storage_name, str(digest), start, length)
            return Response(status, {**headers, FRONT.TAIL_HEADER: order})
        headers["Content-Length"] = str(length)
        stream = await self.proxy.blob_stream(selected, digest, start, length)
        return Response(status, headers, stream=stream)

    async def delete_blob(self, request: Request, name: str, digest: str) -> Response:
        self._check_writable()
        await asyncio.to_thread(self._repository(name).blobs().delete, Digest(digest))
        return Response(202)

    # uploads
