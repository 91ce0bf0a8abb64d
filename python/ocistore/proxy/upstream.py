"""The upstream registry, as a client sees it: anonymous, Basic, or the bearer-token flow
(``WWW-Authenticate: Bearer realm=…,service=…,scope=…``, tokens cached per scope until they
expire and fetched again on a 401), the way Docker Hub, ghcr.io and distribution answer.
Credentials (configured, or from a credential helper) go to the upstream and its token realm
only; nothing of them reaches the proxy's clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from ..client_auth import parse_challenge, token_answer
from .config import UpstreamConfig

__all__ = ["Upstream", "UpstreamError"]

#: Tokens are fetched again this long before they expire.
TOKEN_MARGIN_SECONDS = 10.0


class UpstreamError(Exception):
    """The upstream could not be reached, or answered what a registry must not."""


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
        verify: ssl.SSLContext | bool = True
        if config.insecure:
            verify = False
        elif config.cafile is not None:
            verify = ssl.create_default_context(cafile=config.cafile)
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
        realm = params.get("realm")
        if not realm:
            raise UpstreamError("the upstream's bearer challenge names no realm")
        query = {"service": params["service"]} if params.get("service") else {}
        if scope:
            query["scope"] = scope
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

    async def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and time.monotonic() < token.until:
            return f"Bearer {token.value}"
        if self._basic_realm and (auth := await self.credentials()) is not None:
            return _basic(*auth)
        return None

    async def _answer_challenge(self, response: httpx.Response, scope: str) -> str | None:
        """The ``Authorization`` to retry a 401 with, or None when there is none to give."""
        challenge = response.headers.get("www-authenticate")
        if not challenge:
            return None
        scheme, params = parse_challenge(challenge)
        scheme = scheme.lower()
        if scheme == "bearer":
            self._tokens.pop(scope, None)
            return f"Bearer {await self._token(params, params.get('scope') or scope)}"
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
        scope = f"repository:{name}:pull"
        sent = dict(headers or {})
        if (authorization := await self._authorization(scope)) is not None:
            sent["Authorization"] = authorization
        url = self.url(path, ns)
        try:
            request = self.client.build_request(method, url, headers=sent)
            response = await self.client.send(request, stream=True)
            if response.status_code == 401:
                retry = await self._answer_challenge(response, scope)
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
