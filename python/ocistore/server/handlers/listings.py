"""The base endpoint, the catalog, tag listings, referrers and metrics."""

from __future__ import annotations

import asyncio
import json

import httpx

from ... import _core
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
)

__all__ = ["ListingHandlers"]


def _page(items: list[str], n: int | None, path: str) -> tuple[list[str], dict[str, str]]:
    """The first ``n`` of ``items`` and the response's headers, with a ``Link`` to the next
    page when more remain (the core's rule, ``crate::listing::page``)."""
    page, link = _core.listing_page(items, n, path)
    return page, _listing_headers(link)


def _listing_headers(link: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if link is not None:
        headers["Link"] = link
    return headers


def _without_ns(request: Request) -> str:
    """The request's query string for the upstream: ``ns`` is the cache's, not the upstream's
    (``Upstream.url`` adds it back where configured)."""
    return str(httpx.QueryParams([(k, v) for k, v in request.query_pairs if k != "ns"]))


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
        names, headers = _page(names, n, "/v2/_catalog")
        return Response(200, headers, json.dumps({"repositories": names}).encode())

    async def tags_list(self, request: Request, name: str) -> Response:
        selected = self._proxied(request, name)
        if selected is not None:
            assert self.proxy is not None
            path = f"/v2/{name}/tags/list"
            got = await self.proxy.passthrough_json(selected, path, _without_ns(request))
            if got is not None:
                status, body, headers = got
                return Response(status, {**headers, **selected.headers()}, body)
            local = await self._local_tags(request, name, selected.storage_name)
            local.headers.update(selected.headers())
            return local
        return await self._local_tags(request, name, name)

    async def _local_tags(self, request: Request, name: str, storage_name: str) -> Response:
        repo = self._repository(storage_name)
        try:
            tags = await asyncio.to_thread(repo.tags().all)
        except ErrRepositoryUnknown as e:
            raise ApiError(404, "NAME_UNKNOWN", e.message, {"name": name}) from None
        # The page and its body are the core's (``crate::listing``), as the native front's.
        body, link = _core.tag_listing(name, tags, page_size(request), request.query.get("last"))
        return Response(200, _listing_headers(link), body.encode())

    async def referrers(self, request: Request, name: str, digest: str) -> Response:
        subject = Digest(digest)
        selected = self._proxied(request, name)
        artifact_type = request.query.get("artifactType") or None
        if selected is not None:
            assert self.proxy is not None
            got = await self.proxy.referrers(selected, subject, artifact_type)
            if got is not None:
                status, body, headers = got
                return Response(status, {**headers, **selected.headers()}, body)
            name = selected.storage_name
        repo = self._repository(name)
        index = await asyncio.to_thread(repo.referrers, subject, artifact_type)
        headers = {"Content-Type": OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(200, headers, index.payload())

    # manifests
