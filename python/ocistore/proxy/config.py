"""The ``proxy`` section: distribution's keys for one upstream, and ocistore's ``upstreams``
for several, chosen by the spec's ``ns`` query parameter::

    proxy:
      remoteurl: https://registry-1.docker.io   # distribution's: the upstream of requests
      namespace: docker.io                      # ocistore's, optional: and of ?ns=docker.io
      username: ...                             #   without ns (optional, as below)
      password: ...
      exec: {command: docker-credential-x, lifetime: 1h}   # distribution 3's credential helper
      ttl: 168h                                 # 0: kept until deleted
      tagcheck: 30s                             # ocistore's: how often a tag is asked upstream
      tls: {cafile: PEM, insecure: false}       # ocistore's: TLS to the upstream
      upstreams:                                # ocistore's: more upstreams, by ?ns=
        - namespace: ghcr.io
          remoteurl: https://ghcr.io
          # username, password, exec, ttl, tagcheck, tls as above; forwardns: true sends the
          # ns parameter on (an upstream that is a proxy by ns itself)

The default upstream's repositories are stored under their names, as distribution's proxy
stores them; an ``ns`` upstream's under ``<namespace>/<name>`` (``:`` spelled ``_``), so that
two upstreams' ``library/alpine`` never meet.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_TAG_CHECK", "DEFAULT_TTL", "ProxyConfigError", "UpstreamConfig", "parse_proxy"]

#: distribution's default ``proxy.ttl``: 168h.
DEFAULT_TTL = 168 * 3600.0
#: How long a tag's upstream digest is trusted before it is asked again.
DEFAULT_TAG_CHECK = 30.0

_NAMESPACE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?")


class ProxyConfigError(ValueError):
    """A ``proxy`` section that cannot be used; the message names the key."""


@dataclass(frozen=True)
class UpstreamConfig:
    remoteurl: str
    #: The ``ns`` value that selects it (optional for the default upstream, which also answers
    #: requests without ``ns`` and those naming its own host).
    namespace: str | None = None
    #: ``proxy.remoteurl`` (distribution's single upstream) rather than one of ``upstreams``.
    is_default: bool = False
    username: str | None = None
    password: str | None = None
    exec_command: str | None = None
    #: How long credentials from ``exec`` are reused; None: for ever (distribution's default).
    exec_lifetime: float | None = None
    ttl_seconds: float = DEFAULT_TTL
    tag_check_seconds: float = DEFAULT_TAG_CHECK
    cafile: str | None = None
    insecure: bool = False
    forward_ns: bool = False

    @property
    def storage_prefix(self) -> str:
        """What the repositories of this upstream are stored under ("" for the default)."""
        if self.is_default or self.namespace is None:
            return ""
        return self.namespace.replace(":", "_") + "/"

    @property
    def host(self) -> str:
        return urlsplit(self.remoteurl).netloc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_KEYS = {
    "remoteurl",
    "username",
    "password",
    "exec",
    "ttl",
    "tagcheck",
    "tls",
    "namespace",
    "forwardns",
}


def _upstream(node: Any, where: str, duration: Any, *, default: bool) -> UpstreamConfig:
    if not isinstance(node, dict):
        raise ProxyConfigError(f"{where}: expected a mapping")
    allowed = _KEYS - ({"forwardns"} if default else set())
    for key in node:
        if key not in allowed and not (default and key == "upstreams"):
            raise ProxyConfigError(
                f"unknown configuration key '{where}.{key}' "
                f"(allowed here: {', '.join(sorted(allowed))})"
            )
    url = node.get("remoteurl")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ProxyConfigError(f"{where}.remoteurl: expected an http or https URL, got {url!r}")
    parts = urlsplit(url)
    if not parts.netloc or parts.query or parts.fragment or parts.path.strip("/"):
        raise ProxyConfigError(f"{where}.remoteurl: expected a registry's base URL, got {url!r}")
    namespace = node.get("namespace")
    given = namespace is not None or not default
    if given and (not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)):
        raise ProxyConfigError(
            f"{where}.namespace: expected a registry host such as docker.io, got {namespace!r}"
        )
    username, password = node.get("username"), node.get("password")
    if (username is None) != (password is None):
        raise ProxyConfigError(f"{where}: username and password go together")
    exec_command: str | None = None
    exec_lifetime: float | None = None
    if (helper := node.get("exec")) is not None:
        if not isinstance(helper, dict) or not isinstance(helper.get("command"), str):
            raise ProxyConfigError(f"{where}.exec: expected {{command: ..., lifetime: ...}}")
        unknown = set(helper) - {"command", "lifetime"}
        if unknown:
            raise ProxyConfigError(f"{where}.exec: unknown keys {sorted(unknown)}")
        exec_command = helper["command"]
        if helper.get("lifetime") is not None:
            exec_lifetime = duration(helper["lifetime"], f"{where}.exec.lifetime")
    tls = node.get("tls") or {}
    if not isinstance(tls, dict) or set(tls) - {"cafile", "insecure"}:
        raise ProxyConfigError(f"{where}.tls: expected {{cafile: PEM, insecure: bool}}")
    cafile = tls.get("cafile")
    if cafile is not None and not Path(str(cafile)).is_file():
        raise ProxyConfigError(f"{where}.tls.cafile: no such file {cafile}")
    insecure = tls.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ProxyConfigError(f"{where}.tls.insecure: expected true or false")
    ttl = DEFAULT_TTL if node.get("ttl") is None else duration(node["ttl"], f"{where}.ttl")
    check = node.get("tagcheck")
    tag_check = DEFAULT_TAG_CHECK if check is None else duration(check, f"{where}.tagcheck")
    forward = node.get("forwardns", False)
    if not isinstance(forward, bool):
        raise ProxyConfigError(f"{where}.forwardns: expected true or false")
    return UpstreamConfig(
        remoteurl=url.rstrip("/"),
        namespace=namespace,
        is_default=default,
        username=None if username is None else str(username),
        password=None if password is None else str(password),
        exec_command=exec_command,
        exec_lifetime=exec_lifetime,
        ttl_seconds=ttl,
        tag_check_seconds=tag_check,
        cafile=None if cafile is None else str(cafile),
        insecure=insecure,
        forward_ns=forward,
    )


def parse_proxy(node: Any, duration: Any) -> list[UpstreamConfig]:
    """The upstreams of a ``proxy`` section: the default one first (when ``remoteurl`` is
    given), then each of ``upstreams``. ``duration(value, key)`` reads a Go duration in
    seconds."""
    if not isinstance(node, dict):
        raise ProxyConfigError("proxy: expected a mapping")
    upstreams: list[UpstreamConfig] = []
    if node.get("remoteurl") is not None:
        upstreams.append(_upstream(node, "proxy", duration, default=True))
    elif set(node) - {"upstreams"}:
        raise ProxyConfigError("proxy.remoteurl is required unless only upstreams are given")
    listed = node.get("upstreams") or []
    if not isinstance(listed, list):
        raise ProxyConfigError("proxy.upstreams: expected a list")
    seen = {u.namespace for u in upstreams if u.namespace is not None}
    for i, item in enumerate(listed):
        upstream = _upstream(item, f"proxy.upstreams[{i}]", duration, default=False)
        assert upstream.namespace is not None
        if upstream.namespace in seen:
            raise ProxyConfigError(
                f"proxy.upstreams[{i}].namespace: {upstream.namespace} is listed twice"
            )
        seen.add(upstream.namespace)
        upstreams.append(upstream)
    if not upstreams:
        raise ProxyConfigError("proxy: give remoteurl or upstreams")
    return upstreams
