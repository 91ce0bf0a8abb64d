"""What a manifest push must satisfy beyond its schema: distribution 3's
``validation.manifests`` (which children of an index must be in the repository, which URLs a
foreign layer may name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ..descriptor import Descriptor

__all__ = ["IndexChildren", "ManifestValidation"]

IndexChildren = Literal["all", "none", "list"]


@dataclass(frozen=True)
class ManifestValidation:
    """``index_children``: ``all`` (every child of an index must be in the repository),
    ``none`` (a sparse index, as ``skopeo copy`` of one platform leaves, is accepted) or
    ``list`` (only the children whose platform is in ``index_platforms``, as ``(os,
    architecture)`` pairs). ``urls_allow``: patterns a foreign layer's URLs must each match
    (``None``: any http or https URL — the spec's conformance suite pushes non-distributable
    layers by default, which distribution 3 refuses when ``allow`` is unset); ``urls_deny``:
    patterns none of them may match."""

    index_children: IndexChildren = "all"
    #: Whether an image manifest's config and layers must be in the repository (ocistore's
    #: ``validation.manifests.blobs``: ``none`` accepts a sparse image, as the spec's suite
    #: pushes with sparse data; distribution 3 has no such switch and refuses it).
    blobs_required: bool = True
    index_platforms: tuple[tuple[str, str], ...] = ()
    urls_allow: tuple[re.Pattern[str], ...] | None = None
    urls_deny: tuple[re.Pattern[str], ...] = ()

    def child_required(self, child: Descriptor) -> bool:
        """Whether the index's ``child`` must be in the repository for the index to be put."""
        if self.index_children == "none":
            return False
        if self.index_children == "all":
            return True
        platform = child.platform
        return platform is not None and (platform.os, platform.architecture) in set(
            self.index_platforms
        )

    def url_problem(self, url: str) -> str | None:
        """Why a foreign layer may not name ``url``; None when it may."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return "not a URL"
        if parts.scheme not in ("http", "https") or parts.fragment:
            return "only http and https URLs without a fragment"
        if self.urls_allow is not None and not any(p.search(url) for p in self.urls_allow):
            return "matches no pattern of validation.manifests.urls.allow"
        if any(p.search(url) for p in self.urls_deny):
            return "matches validation.manifests.urls.deny"
        return None
