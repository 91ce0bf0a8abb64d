"""The pull-through cache: ``ocistore serve`` with a ``proxy`` section mirrors upstream
registries (``config``: the section; ``upstream``: the upstream client and its auth;
``cache``: what each read does; ``fetch``: a blob fetched once for every waiting client;
``expiry``: ttl without data loss)."""

from .config import UpstreamConfig

__all__ = ["UpstreamConfig"]
