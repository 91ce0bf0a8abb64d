"""The upstream registry, as a client sees it: anonymous, Basic, or the bearer-token flow
(``WWW-Authenticate: Bearer realm=…,service=…,scope=…``, tokens cached per scope until they
expire and fetched again on a 401), the way Docker Hub, ghcr.io and distribution answer.
Credentials (configured, or from a credential helper) go to the upstream and its token realm
only; nothing of them reaches the proxy's clients.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

from ..client_auth import parse_challenge, token_answer
from .config import UpstreamConfig

__all__ = ["Upstream", "UpstreamError"]

#: Redirects a blob GET may take (Docker Hub sends blobs to its CDN).
MAX_REDIRECTS = 5
#: A blob body that sends nothing for this long is cut off (and resumed).
BLOCKING_TIMEOUT = 60.0
#: Tokens are fetched again this long before they expire.
TOKEN_MARGIN_SECONDS = 10.0


class UpstreamError(Exception):
    """The upstream could not be reached, or answered what a registry must not. ``permanent``:
    trying again cannot help (its certificate is not trusted)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class _Token:
    value: str
    until: float


class Upstream:
    """One upstream registry and the credentials to read it."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        # One TLS policy for both clients: the upstream's CA (or certifi's bundle, as httpx's
        # default), or no verification with tls.insecure.
        self.ssl_context = ssl.create_default_context(cafile=config.cafile or certifi.where())
        if config.insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        verify: ssl.SSLContext | bool = False if config.insecure else self.ssl_context
        self.client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(30.0, read=60.0),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._tokens: dict[str, _Token] = {}
        self._basic_realm = False
        self._helper: tuple[tuple[str, str], float] | None = None
        self._helper_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.client.aclose()

    # credentials

    async def credentials(self) -> tuple[str, str] | None:
        """``(username, password)``: configured, or from the credential helper (reused for its
        lifetime); None when anonymous."""
        if self.config.username is not None and self.config.password is not None:
            return self.config.username, self.config.password
        if self.config.exec_command is None:
            return None
        async with self._helper_lock:
            now = time.monotonic()
            lifetime = self.config.exec_lifetime
            if self._helper is not None and (lifetime is None or now < self._helper[1]):
                return self._helper[0]
            found = await self._run_helper()
            if lifetime != 0:
                self._helper = (found, now + (lifetime or 0.0))
            return found

    async def _run_helper(self) -> tuple[str, str]:
        """The docker credential helper protocol: ``<command> get``, the server on stdin,
        ``{"Username", "Secret"}`` on stdout."""
        command = self.config.exec_command
        assert command is not None
        proc = await asyncio.create_subprocess_exec(
            command,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(self.config.host.encode()), 30)
        if proc.returncode != 0:
            raise UpstreamError(
                f"credential helper {command} failed: {err.decode(errors='replace').strip()}"
            )
        try:
            answer = json.loads(out)
            return str(answer["Username"]), str(answer["Secret"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"credential helper {command} answered no credentials") from None

    async def _token(self, params: dict[str, str], scope: str) -> str:
        """A token for ``scope`` (the challenge's own scope when it names one), cached under
        ``scope``."""
        asked = params.get("scope") or scope
        realm = params.get("realm")
        if not realm:
            raise UpstreamError("the upstream's bearer challenge names no realm")
        query = {"service": params["service"]} if params.get("service") else {}
        if asked:
            query["scope"] = asked
        auth = await self.credentials()
        try:
            r = await self.client.get(realm, params=query, auth=auth)
        except httpx.HTTPError as e:
            raise UpstreamError(f"token service {realm}: {e}") from None
        if r.status_code != 200:
            raise UpstreamError(f"token service {realm} answered {r.status_code}")
        value, lasts = token_answer(r)
        if not value:
            raise UpstreamError(f"token service {realm} answered no token")
        self._tokens[scope] = _Token(value, time.monotonic() + lasts - TOKEN_MARGIN_SECONDS)
        return value

    @staticmethod
    def scope(name: str) -> str:
        return f"repository:{name}:pull"

    async def authorization(self, scope: str) -> str | None:
        """The ``Authorization`` a request for ``scope`` goes with now (None: try without)."""
        token = self._tokens.get(scope)
        if token is not None and time.monotonic() < token.until:
            return f"Bearer {token.value}"
        if self._basic_realm and (auth := await self.credentials()) is not None:
            return _basic(*auth)
        return None

    async def answer_challenge(self, challenge: str | None, scope: str) -> str | None:
        """The ``Authorization`` to retry a 401 with (``challenge``: its ``WWW-Authenticate``),
        or None when there is none to give."""
        if not challenge:
            return None
        scheme, params = parse_challenge(challenge)
        scheme = scheme.lower()
        if scheme == "bearer":
            self._tokens.pop(scope, None)
            return f"Bearer {await self._token(params, scope)}"
        if scheme == "basic" and (auth := await self.credentials()) is not None:
            self._basic_realm = True
            return _basic(*auth)
        return None

    # requests

    def url(self, path: str, ns: str | None) -> str:
        url = f"{self.config.remoteurl}{path}"
        if ns is not None and self.config.forward_ns:
            url += ("&" if "?" in url else "?") + str(httpx.QueryParams({"ns": ns}))
        return url

    @asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        *,
        name: str,
        headers: dict[str, str] | None = None,
        ns: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Sends a request for repository ``name`` (its pull scope), answering one auth
        challenge; the response is open (streamed) until the block ends."""
        scope = self.scope(name)
        sent = dict(headers or {})
        if (authorization := await self.authorization(scope)) is not None:
            sent["Authorization"] = authorization
        url = self.url(path, ns)
        try:
            request = self.client.build_request(method, url, headers=sent)
            response = await self.client.send(request, stream=True)
            if response.status_code == 401:
                retry = await self.answer_challenge(response.headers.get("www-authenticate"), scope)
                await response.aclose()
                if retry is not None:
                    sent["Authorization"] = retry
                    request = self.client.build_request(method, url, headers=sent)
                    response = await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise UpstreamError(f"{self.config.remoteurl}: {method} {path}: {e}") from None
        try:
            yield response
        finally:
            await response.aclose()

    def get_blocking(
        self, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """A GET on the calling (worker) thread, for a blob body read in large pieces straight
        into a buffer; redirects are followed (to a CDN, an object store), ``Authorization``
        only to the upstream's own host. The caller closes the connection."""
        sent = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            connection: http.client.HTTPConnection
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=BLOCKING_TIMEOUT,
                    context=self.ssl_context,
                )  # fmt: skip
            else:
                connection = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=BLOCKING_TIMEOUT
                )
            try:
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                connection.request("GET", target, headers=sent)
                response = connection.getresponse()
            except ssl.SSLCertVerificationError as e:
                connection.close()
                raise UpstreamError(f"GET {url}: {e}", permanent=True) from None
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                raise UpstreamError(f"GET {url}: {e}") from None
            location = response.getheader("location")
            if response.status in (301, 302, 303, 307, 308) and location:
                connection.close()
                url = urljoin(url, location)
                if urlsplit(url).netloc != urlsplit(self.config.remoteurl).netloc:
                    sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
                continue
            return response, connection
        raise UpstreamError(f"GET {url}: more than {MAX_REDIRECTS} redirects")
