"""Keys, certificates, tokens and a token server for the authentication tests.

The token server plays the part of distribution's authorization service (the token
specification): it checks basic credentials and answers with a JWT granting the scopes asked
for, within what its policy allows the user.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

SERVICE = "ocistore-test"
ISSUER = "test-token-issuer"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    key: PrivateKey,
    name: str,
    *,
    issuer: tuple[PrivateKey, x509.Certificate] | None = None,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def x5c(*certificates: x509.Certificate) -> list[str]:
    return [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certificates
    ]


def make_token(
    key: PrivateKey,
    *,
    access: list[tuple[str, str, list[str]]] | None = None,
    kid: str | None = None,
    chain: list[str] | None = None,
    algorithm: str | None = None,
    subject: str = "alice",
    audience: str | list[str] = SERVICE,
    issuer: str = ISSUER,
    expires_in: float = 300,
    not_before_in: float | None = None,
    extra_headers: dict[str, Any] | None = None,
) -> str:
    now = time.time()
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": int(now + expires_in),
        "iat": int(now),
        "jti": str(uuid.uuid4()),
        "access": [{"type": t, "name": n, "actions": a} for t, n, a in access or []],
    }
    if not_before_in is not None:
        claims["nbf"] = int(now + not_before_in)
    headers: dict[str, Any] = dict(extra_headers or {})
    if kid is not None:
        headers["kid"] = kid
    if chain is not None:
        headers["x5c"] = chain
    algorithm = algorithm or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


@dataclass
class TokenServer:
    url: str
    requests: list[dict[str, list[str]]]


Policy = Callable[[str, str, str, str], bool]  # (user, type, name, action) -> allowed


def _grant_everything(user: str, kind: str, name: str, action: str) -> bool:
    return True


@contextmanager
def token_server(
    key: PrivateKey,
    kid: str,
    users: dict[str, str],
    policy: Policy = _grant_everything,
) -> Iterator[TokenServer]:
    """An authorization service on 127.0.0.1 issuing tokens signed by ``key``."""
    seen: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            seen.append(query)
            scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
            user = ""
            if scheme.lower() == "basic":
                user, _, password = base64.b64decode(credentials).decode().partition(":")
                if users.get(user) != password:
                    self.send_response(401)
                    self.end_headers()
                    return
            access: list[tuple[str, str, list[str]]] = []
            for scope in " ".join(query.get("scope", [])).split():
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                allowed = [a for a in actions.split(",") if user and policy(user, kind, name, a)]
                if allowed:
                    access.append((kind, name, allowed))
            token = make_token(key, kid=kid, access=access, subject=user)
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenServer(f"http://127.0.0.1:{server.server_address[1]}/token", seen)
    finally:
        server.shutdown()
        server.server_close()


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
