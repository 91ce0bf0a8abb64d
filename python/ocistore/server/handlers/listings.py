"""The base endpoint, the catalog, tag listings, referrers and metrics."""

from __future__ import annotations

import asyncio
import json

from ..._core import Digest
from ...errors import (
    ErrRepositoryUnknown,
)
from ...storage.manifests import OCI_INDEX
from ..base import AppBase, page_size
from ..http import (
    ApiError,
    Request,
    Response,
    link_header,
)

__all__ = ["ListingHandlers"]


class ListingHandlers(AppBase):
    """``/v2/``, ``_catalog``, ``tags/list``, ``referrers`` and ``/metrics``."""

    async def base(self, request: Request) -> Response:
        return Response(200, {"Content-Type": "application/json"}, b"{}")

    async def serve_metrics(self, request: Request) -> Response:
        body, content_type = await asyncio.to_thread(self.metrics.render)
        return Response(200, {"Content-Type": content_type}, body)

    async def catalog(self, request: Request) -> Response:
        n = page_size(request)
        last = request.query.get("last") or None
        names = await asyncio.to_thread(
            self.registry.repositories, last, None if n is None else n + 1
        )
        headers = {"Content-Type": "application/json"}
        if n is not None and len(names) > n:
            names = names[:n]
            headers["Link"] = link_header("/v2/_catalog", {"last": names[-1], "n": str(n)})
        return Response(200, headers, json.dumps({"repositories": names}).encode())

    async def tags_list(self, request: Request, name: str) -> Response:
        repo = self._repository(name)
        try:
            tags = await asyncio.to_thread(repo.tags().all)
        except ErrRepositoryUnknown as e:
            raise ApiError(404, "NAME_UNKNOWN", e.message, {"name": name}) from None
        n = page_size(request)
        last = request.query.get("last")
        if last:
            tags = [t for t in tags if t > last]
        headers = {"Content-Type": "application/json"}
        if n is not None:
            if len(tags) > n:
                headers["Link"] = link_header(
                    f"/v2/{name}/tags/list", {"last": tags[n - 1] if n else "", "n": str(n)}
                )
            tags = tags[:n]
        return Response(200, headers, json.dumps({"name": name, "tags": tags}).encode())

    async def referrers(self, request: Request, name: str, digest: str) -> Response:
        repo = self._repository(name)
        subject = Digest(digest)
        artifact_type = request.query.get("artifactType") or None
        index = await asyncio.to_thread(repo.referrers, subject, artifact_type)
        headers = {"Content-Type": OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(200, headers, index.payload())

    # manifests
