"""Blobs: GET and HEAD (ranges, ``If-None-Match``, redirects on object storage), DELETE."""

from __future__ import annotations

import asyncio

from ..._core import Digest
from ..base import AppBase
from ..http import (
    Request,
    Response,
    parse_range,
)

__all__ = ["BlobHandlers"]


class BlobHandlers(AppBase):
    """``/v2/<name>/blobs/<digest>``."""

    async def get_blob(self, request: Request, name: str, digest: str) -> Response:
        blobs = self._repository(name).blobs()
        parsed = Digest(digest)
        # The bytes may live under another digest (distribution's alias links); the answer
        # names the digest asked for.
        stored = await self._lookup(blobs.resolve, parsed)
        descriptor = await self._lookup(self.registry.blobs().stat, stored)
        size = descriptor.size
        etag = f'"{parsed}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": str(parsed),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
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

    async def delete_blob(self, request: Request, name: str, digest: str) -> Response:
        self._check_writable()
        await asyncio.to_thread(self._repository(name).blobs().delete, Digest(digest))
        return Response(202)

    # uploads
