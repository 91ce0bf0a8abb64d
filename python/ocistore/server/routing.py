"""The routing table of the registry API: which handler answers which path and method. Each
parameter is matched in the path as sent, then percent-decoded (the core's decoding), so an
encoded ``/`` stays inside the parameter it was sent in and is then refused by its grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import _core

__all__ = ["NOT_FOUND", "ROUTES", "Route", "match"]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method -> handler attribute


NAME = r"(?P<name>[^?#]+?)"
ROUTES = [
    Route("base", re.compile(r"/v2/?"), {"GET": "base", "HEAD": "base"}),
    Route("catalog", re.compile(r"/v2/_catalog"), {"GET": "catalog"}),
    Route("tags", re.compile(rf"/v2/{NAME}/tags/list"), {"GET": "tags_list"}),
    Route(
        "manifest",
        re.compile(rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)"),
        {
            "GET": "get_manifest",
            "HEAD": "get_manifest",
            "PUT": "put_manifest",
            "DELETE": "delete_manifest",
        },
    ),
    Route("upload_start", re.compile(rf"/v2/{NAME}/blobs/uploads/?"), {"POST": "start_upload"}),
    Route(
        "upload",
        re.compile(rf"/v2/{NAME}/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": "upload_status",
            "PATCH": "patch_upload",
            "PUT": "finish_upload",
            "DELETE": "cancel_upload",
        },
    ),
    Route(
        "blob",
        re.compile(rf"/v2/{NAME}/blobs/(?P<digest>[^/]+)"),
        {"GET": "get_blob", "HEAD": "get_blob", "DELETE": "delete_blob"},
    ),
    Route(
        "referrers",
        re.compile(rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)"),
        {"GET": "referrers"},
    ),
    Route("metrics", re.compile(r"/metrics"), {"GET": "serve_metrics"}),
]

#: The route name of a path no route matches.
NOT_FOUND = "unknown"


def match(path: str, method: str) -> tuple[str, str | None, dict[str, str]]:
    """``(route name, handler attribute, decoded parameters)`` for ``path`` as sent; the
    attribute is None when the route has no handler for ``method`` (405), and the name is
    ``NOT_FOUND`` when no route matches (404)."""
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        attribute = route.methods.get(method)
        if attribute is None:
            return route.name, None, {}
        params = {key: _core.percent_decode(value) for key, value in found.groupdict().items()}
        return route.name, attribute, params
    return NOT_FOUND, None, {}
