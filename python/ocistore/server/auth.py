"""Authentication and authorization, configured as distribution's ``auth:`` section.

Two access controllers, as in distribution:

``htpasswd``
    HTTP basic auth against an Apache htpasswd file of bcrypt entries. Any user in the file may
    do anything (distribution's semantics: htpasswd authenticates, it does not authorize). The
    file is re-read when it changes; a successful check is remembered for the same header so a
    pull does not pay bcrypt's cost on every request.

``token``
    Bearer tokens as in distribution's token specification: a JWT signed (RS256/384/512,
    PS256/384/512, ES256/384/512) by a key the registry trusts, with ``iss`` equal to the
    configured issuer, ``aud`` containing the configured service, ``exp`` in the future and
    ``nbf`` in the past (60 s leeway, as distribution allows), and an ``access`` claim listing
    ``{type, name, actions}`` grants. Trusted keys come from ``rootcertbundle`` (a PEM bundle of
    certificates: a token names one by ``kid`` — the libtrust key ID of its public key — or
    carries an ``x5c`` chain whose leaf is one of them or is signed by one) and/or ``jwks`` (a
    JSON Web Key Set file; tokens name a key by ``kid``).

Each request needs the access distribution asks for: ``pull`` to read a repository, ``pull`` and
``push`` to write one, ``delete`` to delete, ``registry:catalog:*`` for the catalog, and no
particular grant for ``/v2/`` and ``/metrics`` (a valid credential is enough). Missing or invalid
credentials answer 401 ``UNAUTHORIZED`` with a ``WWW-Authenticate`` challenge naming the scope to
ask for; valid credentials without the grant answer 403 ``DENIED``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .http import ApiError, Request
from .identity import Access, Identity

__all__ = [
    "Access",
    "AccessController",
    "AuthConfigError",
    "HtpasswdAccessController",
    "Identity",
    "TokenAccessController",
    "access_controller",
    "libtrust_key_id",
    "required_access",
]

#: Clock skew tolerated on ``exp`` and ``nbf``, as distribution's token verification allows.
LEEWAY_SECONDS = 60
#: Verified credentials remembered per worker (bounded; an entry never outlives its token).
CACHE_SIZE = 1024


class AuthConfigError(ValueError):
    """An ``auth:`` section that cannot be used; the message names the key or file."""


def _scope_param(access: Sequence[Access]) -> str:
    """The challenge's ``scope``: actions on one resource joined by commas, resources by spaces."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in access:
        actions = grouped.setdefault((item.type, item.name), [])
        if item.action not in actions:
            actions.append(item.action)
    return " ".join(f"{t}:{n}:{','.join(a)}" for (t, n), a in grouped.items())


def required_access(route: str, method: str, params: Mapping[str, str]) -> list[Access]:
    """The grants distribution requires for a route (``from`` of a mount is checked apart)."""
    name = params.get("name")
    if route == "catalog":
        return [Access("registry", "catalog", "*")]
    if name is None:
        return []
    if method in {"GET", "HEAD"}:
        return [Access("repository", name, "pull")]
    if method == "DELETE" and route in {"manifest", "blob"}:
        return [Access("repository", name, "delete")]
    # Writes (and cancelling an upload, which is part of pushing) need pull and push.
    return [Access("repository", name, "pull"), Access("repository", name, "push")]


class AccessController(Protocol):
    async def authorize(self, request: Request, access: Sequence[Access]) -> Identity:
        """The caller's identity if it holds every grant in ``access``; else raises ``ApiError``
        (401 with a challenge, or 403 ``DENIED``)."""
        ...


def _denied(access: Sequence[Access], challenge: str) -> ApiError:
    return ApiError(
        403,
        "DENIED",
        "requested access to the resource is denied",
        detail=[{"Type": a.type, "Name": a.name, "Action": a.action} for a in access],
        headers={"WWW-Authenticate": challenge},
    )


def _unauthorized(message: str, access: Sequence[Access], challenge: str) -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        message,
        detail=[{"Type": a.type, "Name": a.name, "Action": a.action} for a in access] or None,
        headers={"WWW-Authenticate": challenge},
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Cache:
    """A small LRU of verified credentials: header value -> (identity, valid until)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def get(self, key: str) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        identity, until = entry
        if time.time() >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def put(self, key: str, identity: Identity, until: float) -> None:
        self._entries[key] = (identity, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


# -- htpasswd ---------------------------------------------------------------------------------


def _read_htpasswd(path: Path) -> dict[str, bytes]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AuthConfigError(f"auth.htpasswd.path: cannot read {path}: {e}") from None
    entries: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise AuthConfigError(f"{path}:{number}: expected USER:HASH")
        if not hashed.startswith(("$2y$", "$2a$", "$2b$")):
            # distribution accepts bcrypt only; refusing at load beats a user who can never log in.
            raise AuthConfigError(
                f"{path}:{number}: user {user!r} has no bcrypt hash (create it with htpasswd -B)"
            )
        entries[user] = hashed.encode()
    return entries


class HtpasswdAccessController:
    def __init__(self, realm: str, path: str | Path) -> None:
        self.realm = realm
        self.path = Path(path)
        self._entries = _read_htpasswd(self.path)
        self._stamp = self._file_stamp()
        self._cache = _Cache()

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload_if_changed(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            self._entries = _read_htpasswd(self.path)
        except AuthConfigError:
            # A file half-way through an edit: keep the users we had rather than lock everyone out.
            return
        self._stamp = stamp
        self._cache.clear()

    def challenge(self) -> str:
        return f"Basic realm={_quote(self.realm)}"

    async def authorize(self, request: Request, access: Sequence[Access]) -> Identity:
        header = request.header("authorization") or ""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            raise _unauthorized("authentication required", access, self.challenge())
        self._reload_if_changed()
        if (identity := self._cache.get(header)) is not None:
            return identity
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("malformed basic credentials", access, self.challenge()) from None
        user, sep, password = decoded.partition(":")
        hashed = self._entries.get(user)
        if not sep or hashed is None or not await _bcrypt_matches(password.encode(), hashed):
            raise _unauthorized("invalid username or password", access, self.challenge())
        identity = Identity(user)
        self._cache.put(header, identity, time.time() + 300)
        return identity


async def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    # bcrypt costs tens of milliseconds and releases the GIL: keep it off the event loop.
    try:
        return await asyncio.to_thread(bcrypt.checkpw, password, hashed)
    except ValueError:
        return False


# -- token ------------------------------------------------------------------------------------

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = ("ES256", "ES384", "ES512")


def libtrust_key_id(public_key: Any) -> str:
    """distribution's key ID: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits in base32,
    in groups of four joined by ':'."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def _algorithms_for(key: Any) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return list(_RSA_ALGORITHMS)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return list(_EC_ALGORITHMS)
    return []


def _load_certificates(path: Path) -> list[Any]:
    from cryptography import x509

    try:
        data = path.read_bytes()
    except OSError as e:
        raise AuthConfigError(f"auth.token.rootcertbundle: cannot read {path}: {e}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise AuthConfigError(f"auth.token.rootcertbundle: {path}: {e}") from None
    for certificate in certificates:
        if not _algorithms_for(certificate.public_key()):
            raise AuthConfigError(
                f"auth.token.rootcertbundle: {path}: only RSA and EC keys are supported"
            )
    return certificates


def _load_jwks(path: Path) -> dict[str, Any]:
    from jwt import PyJWKSet
    from jwt.exceptions import PyJWTError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        keys = PyJWKSet.from_dict(document).keys
    except (OSError, ValueError, PyJWTError) as e:
        raise AuthConfigError(f"auth.token.jwks: {path}: {e}") from None
    found: dict[str, Any] = {}
    for key in keys:
        if not key.key_id:
            raise AuthConfigError(f"auth.token.jwks: {path}: every key needs a 'kid'")
        public = key.key.public_key() if hasattr(key.key, "private_bytes") else key.key
        if not _algorithms_for(public):
            raise AuthConfigError(f"auth.token.jwks: {path}: only RSA and EC keys are supported")
        found[key.key_id] = public
    return found


@dataclass
class TokenAccessController:
    realm: str
    service: str
    issuer: str
    rootcertbundle: str | None = None
    jwks: str | None = None
    _keys: dict[str, Any] = field(init=False, default_factory=dict)
    _roots: list[Any] = field(init=False, default_factory=list)
    _cache: _Cache = field(init=False, default_factory=_Cache)

    def __post_init__(self) -> None:
        for key_name in ("realm", "service", "issuer"):
            if not getattr(self, key_name):
                raise AuthConfigError(f"auth.token.{key_name} is required")
        if not self.rootcertbundle and not self.jwks:
            raise AuthConfigError("auth.token: rootcertbundle or jwks is required")
        if self.rootcertbundle:
            self._roots = _load_certificates(Path(self.rootcertbundle))
            for certificate in self._roots:
                public = certificate.public_key()
                self._keys[libtrust_key_id(public)] = public
        if self.jwks:
            self._keys.update(_load_jwks(Path(self.jwks)))

    def challenge(self, access: Sequence[Access], error: str | None = None) -> str:
        parts = [f"realm={_quote(self.realm)}", f"service={_quote(self.service)}"]
        if access:
            parts.append(f"scope={_quote(_scope_param(access))}")
        if error:
            parts.append(f"error={_quote(error)}")
        return "Bearer " + ",".join(parts)

    def _signing_key(self, header: Mapping[str, Any]) -> Any:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        kid = header.get("kid")
        if isinstance(kid, str) and kid in self._keys:
            return self._keys[kid]
        chain = header.get("x5c")
        if isinstance(chain, list) and chain and isinstance(chain[0], str):
            try:
                leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
            except (binascii.Error, ValueError):
                raise ValueError("unreadable x5c certificate") from None
            for root in self._roots:
                if leaf == root:
                    return leaf.public_key()
                try:
                    leaf.verify_directly_issued_by(root)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return leaf.public_key()
            raise ValueError("the token's x5c certificate is not trusted")
        raise ValueError("the token names no trusted key (kid or x5c)")

    def _verify(self, token: str) -> tuple[Identity, float]:
        import jwt

        header = jwt.get_unverified_header(token)
        key = self._signing_key(header)
        claims = jwt.decode(
            token,
            key,
            algorithms=_algorithms_for(key),
            audience=self.service,
            issuer=self.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
        grants: set[tuple[str, str, str]] = set()
        for entry in claims.get("access") or []:
            if not isinstance(entry, dict):
                raise ValueError("malformed access claim")
            kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
            if not isinstance(kind, str) or not isinstance(name, str):
                raise ValueError("malformed access claim")
            if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
                raise ValueError("malformed access claim")
            grants.update((kind, name, action) for action in actions)
        subject = claims.get("sub")
        identity = Identity(subject if isinstance(subject, str) else "", frozenset(grants))
        return identity, float(claims["exp"]) + LEEWAY_SECONDS

    async def authorize(self, request: Request, access: Sequence[Access]) -> Identity:
        import jwt

        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("authentication required", access, self.challenge(access))
        identity = self._cache.get(token)
        if identity is None:
            try:
                identity, until = self._verify(token)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError) as e:
                raise _unauthorized(
                    f"invalid token: {e}", access, self.challenge(access, "invalid_token")
                ) from None
            identity = replace(identity, expires_at=until)
            self._cache.put(token, identity, until)
        missing = [item for item in access if not identity.allows(item)]
        if missing:
            raise _denied(missing, self.challenge(access, "insufficient_scope"))
        return identity


def access_controller(auth: Mapping[str, Mapping[str, Any]]) -> AccessController | None:
    """The controller a validated ``auth:`` section describes, or ``None`` for no auth."""
    if not auth:
        return None
    (kind, options), *rest = auth.items()
    if rest:
        raise AuthConfigError("auth: configure exactly one of htpasswd or token")
    if kind == "htpasswd":
        for key_name in ("realm", "path"):
            if not options.get(key_name):
                raise AuthConfigError(f"auth.htpasswd.{key_name} is required")
        return HtpasswdAccessController(str(options["realm"]), str(options["path"]))
    if kind == "token":
        return TokenAccessController(
            realm=str(options.get("realm") or ""),
            service=str(options.get("service") or ""),
            issuer=str(options.get("issuer") or ""),
            rootcertbundle=options.get("rootcertbundle"),
            jwks=options.get("jwks"),
        )
    raise AuthConfigError(f"auth.{kind}: not supported (use htpasswd or token)")
