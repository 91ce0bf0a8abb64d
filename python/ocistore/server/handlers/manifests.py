"""Manifests by tag and by digest: GET, HEAD, PUT, DELETE."""

from __future__ import annotations

import asyncio

from ... import hashing
from ..._core import Digest
from ...errors import (
    ErrManifestUnknown,
    ErrTagInvalid,
)
from ...storage import parse_reference, unmarshal_manifest
from ..base import AppBase
from ..http import (
    ApiError,
    Request,
    Response,
    accepts,
)

#: Largest manifest accepted (the OCI spec's suggested minimum is 4 MiB).
MANIFEST_LIMIT = 4 * 1024 * 1024

__all__ = ["ManifestHandlers"]


class ManifestHandlers(AppBase):
    """``/v2/<name>/manifests/<reference>``."""

    async def get_manifest(self, request: Request, name: str, reference: str) -> Response:
        repo = self._repository(name)
        try:
            ref = parse_reference(reference)
        except ErrTagInvalid:
            # No manifest can have that name: for a read, it is simply not there.
            raise ErrManifestUnknown(
                f"manifest unknown: {reference!r} is not a valid tag or digest",
                detail={"name": name, "reference": reference},
            ) from None
        digest = ref if isinstance(ref, Digest) else await self._lookup(repo.tags().resolve, ref)
        manifest = await asyncio.to_thread(repo.manifests().get, digest)
        if not accepts(request.header_values("accept"), manifest.media_type):
            raise ErrManifestUnknown(
                f"manifest {digest} is a {manifest.media_type}, which the request's Accept "
                "header does not include",
                detail={"name": name, "reference": reference},
            )
        payload = manifest.payload()
        return Response(
            200,
            {
                "Content-Type": manifest.media_type,
                "Docker-Content-Digest": str(digest),
                "ETag": f'"{digest}"',
                "Content-Length": str(len(payload)),
            },
            payload,
        )

    async def put_manifest(self, request: Request, name: str, reference: str) -> Response:
        self._check_writable()
        repo = self._repository(name)
        ref = parse_reference(reference)
        payload = await request.body(MANIFEST_LIMIT)
        manifest, descriptor = unmarshal_manifest(request.header("content-type"), payload)
        if isinstance(ref, Digest) and ref != descriptor.digest:
            actual = Digest.from_bytes(ref.algorithm, hashing.new(ref.algorithm, payload).digest())
            if actual != ref:
                raise ApiError(
                    400,
                    "DIGEST_INVALID",
                    f"manifest digest is {actual}, not {ref}",
                    {"expected": str(ref), "actual": str(actual)},
                )
        tag = ref if isinstance(ref, str) else None
        digest = await asyncio.to_thread(repo.manifests().put, manifest, tag=tag)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        if manifest.subject is not None:
            headers["OCI-Subject"] = str(manifest.subject.digest)
        return Response(201, headers)

    async def delete_manifest(self, request: Request, name: str, reference: str) -> Response:
        self._check_writable()
        repo = self._repository(name)
        ref = parse_reference(reference)
        if isinstance(ref, Digest):
            await asyncio.to_thread(repo.manifests().delete, ref)
        else:
            await asyncio.to_thread(repo.tags().untag, ref)
        return Response(202)

    # blobs
