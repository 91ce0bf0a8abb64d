"""Manifests by tag and by digest: GET, HEAD, PUT, DELETE."""

from __future__ import annotations

import asyncio

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
#: Most ``tag`` parameters one manifest push may carry (the spec asks for at least 10).
TAGS_MAX = 100

__all__ = ["ManifestHandlers"]


class ManifestHandlers(AppBase):
    """``/v2/<name>/manifests/<reference>``."""

    async def get_manifest(self, request: Request, name: str, reference: str) -> Response:
        try:
            ref = parse_reference(reference)
        except ErrTagInvalid:
            # No manifest can have that name: for a read, it is simply not there.
            raise ErrManifestUnknown(
                f"manifest unknown: {reference!r} is not a valid tag or digest",
                detail={"name": name, "reference": reference},
            ) from None
        extra: dict[str, str] = {}
        selected = self._proxied(request, name)
        if selected is not None:
            assert self.proxy is not None
            repo = self._repository(selected.storage_name)
            digest = await self.proxy.manifest_digest(selected, reference)
            await asyncio.to_thread(self.proxy.hit_manifest, selected, digest)
            extra = selected.headers()
        else:
            repo = self._repository(name)
            digest = (
                ref if isinstance(ref, Digest) else await self._lookup(repo.tags().resolve, ref)
            )
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
                **extra,
            },
            payload,
        )

    async def put_manifest(self, request: Request, name: str, reference: str) -> Response:
        self._check_writable()
        repo = self._repository(name)
        ref = parse_reference(reference)
        payload = await request.body(MANIFEST_LIMIT)
        manifest, _ = unmarshal_manifest(request.header("content-type"), payload)
        tags = request.query_values("tag")
        if isinstance(ref, Digest):
            # Stored, linked and served under the digest the client gave, in its algorithm.
            manifest = manifest.in_algorithm(ref.algorithm)
            if manifest.digest != ref:
                raise ApiError(
                    400,
                    "DIGEST_INVALID",
                    f"manifest digest is {manifest.digest}, not {ref}",
                    {"expected": str(ref), "actual": str(manifest.digest)},
                )
        if len(tags) > TAGS_MAX:
            raise ApiError(414, "MANIFEST_INVALID", f"at most {TAGS_MAX} tags per request")
        tag = ref if isinstance(ref, str) else None
        digest = await asyncio.to_thread(repo.manifests().put, manifest, tag=tag, tags=tags)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        if tags:
            headers["OCI-Tag"] = ", ".join(dict.fromkeys(tags))
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
