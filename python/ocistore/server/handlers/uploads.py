"""Uploads: POST (a session, a single-request upload, a mount), PATCH, PUT, status, cancel. Each
request holds its upload through the core's claim (``LinkedBlobStore.claim``)."""

from __future__ import annotations

import asyncio
import contextlib

from ... import _core, hashing
from ..._core import Digest
from ...aio import INLINE_WRITE_MAX
from ...descriptor import Descriptor
from ...errors import (
    ErrBlobMounted,
)
from ...storage import LinkedBlobStore
from ...store import BlobWriter
from ..base import AppBase, digest_param
from ..http import (
    ApiError,
    Request,
    Response,
    is_decimal,
    parse_content_range,
)


def _digest_algorithm(request: Request) -> str:
    """The algorithm an upload streams (``?digest-algorithm=``, distribution-spec end-4c;
    sha256 without it); one the registry does not support is 400 ``DIGEST_INVALID``."""
    algorithm = request.query.get("digest-algorithm") or "sha256"
    if algorithm not in hashing.algorithms_available:
        raise ApiError(
            400,
            "DIGEST_INVALID",
            f"unsupported digest algorithm {algorithm!r}; supported: "
            + ", ".join(sorted(hashing.algorithms_available)),
            {"digest-algorithm": algorithm},
        )
    return algorithm


def _created(name: str, digest: Digest) -> Response:
    """A blob now in repository ``name``: 201 with its location and digest."""
    return Response(
        201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)}
    )


def _push_whole(blobs: LinkedBlobStore, data: bytes, digest: Digest) -> Descriptor:
    """A whole blob through an upload, so it is verified against ``digest`` before it is
    published; nothing stays behind when it is not."""
    writer = blobs.create(algorithm=digest.algorithm)
    try:
        writer.write(data)
        return writer.commit(digest)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.cancel()
        raise


__all__ = ["UploadHandlers"]


class UploadHandlers(AppBase):
    """``/v2/<name>/blobs/uploads/[<id>]``."""

    async def start_upload(self, request: Request, name: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        algorithm = _digest_algorithm(request)
        mount = request.query.get("mount")
        if mount:
            digest = Digest(mount)
            source = request.query.get("from") or None
            if not self._may_mount_from(request, source):
                # As the spec allows: ignore the mount and start a normal upload, revealing
                # nothing about a repository the caller may not read.
                writer = await asyncio.to_thread(blobs.create, algorithm=algorithm)
                await request.drain()
                return Response(202, self._upload_headers(name, writer.id, 0))
            try:
                writer = await asyncio.to_thread(
                    blobs.create, mount_from=(source, digest), algorithm=algorithm
                )
            except ErrBlobMounted as mounted:
                return _created(name, mounted.descriptor.digest)
            await request.drain()
            return Response(202, self._upload_headers(name, writer.id, 0))
        if "digest" in request.query:
            digest = digest_param(request.query["digest"])
            length = request.header("content-length")
            if length is not None and is_decimal(length) and int(length) <= INLINE_WRITE_MAX:
                # A small blob: received first, then created, written and committed in one
                # thread hop instead of two.
                data = await request.body(INLINE_WRITE_MAX)
                descriptor = await asyncio.to_thread(_push_whole, blobs, data, digest)
            else:
                # Streamed in the digest's own algorithm: verified without a second pass.
                writer = await asyncio.to_thread(blobs.create, algorithm=digest.algorithm)
                try:
                    await self._stream_into(request, writer)
                    descriptor = await asyncio.to_thread(writer.commit, digest)
                except BaseException:
                    with contextlib.suppress(Exception):
                        writer.cancel()
                    raise
            return _created(name, descriptor.digest)
        writer = await asyncio.to_thread(blobs.create, algorithm=algorithm)
        await request.drain()
        return Response(202, self._upload_headers(name, writer.id, 0))

    async def upload_status(self, request: Request, name: str, upload_id: str) -> Response:
        blobs = self._repository(name).blobs()
        size = await asyncio.to_thread(blobs.upload_size, upload_id)
        return Response(204, self._upload_headers(name, upload_id, size))

    async def _continue_upload(
        self, request: Request, name: str, upload_id: str, writer: BlobWriter
    ) -> None:
        """Checks ``Content-Range``/``Content-Length`` against the upload, then streams the body
        in; the caller checkpoints or commits."""
        content_range = request.header("content-range")
        length_header = request.header("content-length")
        if content_range:
            parsed = parse_content_range(content_range)
            if parsed is None:
                raise ApiError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"malformed Content-Range {content_range!r}",
                    headers=self._upload_headers(name, upload_id, writer.size),
                )
            if not _core.upload_continues(parsed, length_header, writer.size):
                raise ApiError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"Content-Range {content_range!r} does not continue the upload at "
                    f"{writer.size} bytes (or disagrees with Content-Length)",
                    headers=self._upload_headers(name, upload_id, writer.size),
                )
        await self._stream_into(request, writer)

    async def patch_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        writer = await self._claim(blobs, name, upload_id)
        # Each PATCH ends with a checkpoint that does not wait for the disk (as distribution
        # saves its hash state per PATCH, without fsync); the PUT that commits is durable.
        try:
            await self._continue_upload(request, name, upload_id, writer)
        except BaseException:
            writer.close(durable=False)  # keep what arrived resumable, even on cancellation
            raise
        await asyncio.to_thread(writer.close, durable=False)
        return Response(202, self._upload_headers(name, upload_id, writer.size))

    async def finish_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        digest = digest_param(request.query.get("digest"))
        writer = await self._claim(blobs, name, upload_id)
        try:
            await self._continue_upload(request, name, upload_id, writer)
            descriptor = await asyncio.to_thread(writer.commit, digest)
        except BaseException:
            if not writer.closed:
                writer.close()
            raise
        return _created(name, descriptor.digest)

    async def cancel_upload(self, request: Request, name: str, upload_id: str) -> Response:
        self._check_writable()
        blobs = self._repository(name).blobs()
        writer = await self._claim(blobs, name, upload_id)
        await asyncio.to_thread(writer.cancel)
        return Response(204)
