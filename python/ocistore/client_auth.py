"""What a registry client needs to authenticate as docker clients do (the bench's client and
the pull-through cache's upstream client): the ``WWW-Authenticate`` challenge and the token
service's answer."""

from __future__ import annotations

import httpx

__all__ = ["TOKEN_DEFAULT_SECONDS", "parse_challenge", "token_answer"]

#: A token whose answer names no lifetime lasts 60 s (the token specification's default).
TOKEN_DEFAULT_SECONDS = 60.0


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="r",service="s",scope="repository:a:pull,push"`` -> ("Bearer", {...}).
    A comma inside quotes belongs to the value (scopes list actions with commas)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        equals = rest.find("=", i)
        if equals < 0:
            break
        key = rest[i:equals].strip().strip(",").strip()
        if rest[equals + 1 : equals + 2] == '"':
            close = rest.find('"', equals + 2)
            close = len(rest) if close < 0 else close
            value, i = rest[equals + 2 : close], close + 1
        else:
            comma = rest.find(",", equals + 1)
            comma = len(rest) if comma < 0 else comma
            value, i = rest[equals + 1 : comma].strip(), comma
        params[key.lower()] = value
        i = rest.find(",", i)
        i = len(rest) if i < 0 else i + 1
    return scheme, params


def token_answer(response: httpx.Response) -> tuple[str, float]:
    """``(token, lifetime in seconds)`` from a token service's answer; ``("", 0)`` when it
    holds no token (``token``, or OAuth2's ``access_token``)."""
    try:
        body = response.json()
        token = str(body.get("token") or body.get("access_token") or "")
        lifetime = float(body.get("expires_in") or TOKEN_DEFAULT_SECONDS)
    except (ValueError, TypeError, AttributeError):  # not JSON, not an object, no number
        return "", 0.0
    return token, lifetime
