"""Authentication and authorization (distribution's ``auth:`` section) and TLS, against a real
`ocistore serve`: htpasswd basic auth, bearer tokens (RS256 and ES256, kid and x5c), every
endpoint's challenge, scopes per repository and action, and skopeo with credentials."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import jwt
import pytest
from ocistore.bench.http import parse_challenge
from ocistore.server.auth import libtrust_key_id
from ocistore.server.config import ConfigError, load_config
from ocistore.storage import OCI_MANIFEST

from .auth_material import (
    ISSUER,
    SERVICE,
    PrivateKey,
    TokenServer,
    certificate,
    ec_key,
    key_pem,
    make_token,
    pem,
    rsa_key,
    token_server,
    write,
    x5c,
)
from .images import Image, digest_of, make_image
from .servers import Server, ocistore_server
from .test_clients import Layout, blobs_of, image_manifest, skopeo

ZERO = "sha256:" + "0" * 64
UPLOAD = "0b5bb6b2-9f5e-4c3e-a1c7-5a4f3c1e2d3b"

# (method, path, the scope the challenge must name; "" for none)
ENDPOINTS = [
    ("GET", "/v2/", ""),
    ("GET", "/v2/_catalog", "registry:catalog:*"),
    ("GET", "/v2/team/app/tags/list", "repository:team/app:pull"),
    ("GET", "/v2/team/app/manifests/latest", "repository:team/app:pull"),
    ("HEAD", "/v2/team/app/manifests/latest", "repository:team/app:pull"),
    ("PUT", "/v2/team/app/manifests/latest", "repository:team/app:pull,push"),
    ("DELETE", f"/v2/team/app/manifests/{ZERO}", "repository:team/app:delete"),
    ("GET", f"/v2/team/app/blobs/{ZERO}", "repository:team/app:pull"),
    ("HEAD", f"/v2/team/app/blobs/{ZERO}", "repository:team/app:pull"),
    ("DELETE", f"/v2/team/app/blobs/{ZERO}", "repository:team/app:delete"),
    ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
    ("GET", f"/v2/team/app/blobs/uploads/{UPLOAD}", "repository:team/app:pull"),
    ("PATCH", f"/v2/team/app/blobs/uploads/{UPLOAD}", "repository:team/app:pull,push"),
    ("PUT", f"/v2/team/app/blobs/uploads/{UPLOAD}", "repository:team/app:pull,push"),
    ("DELETE", f"/v2/team/app/blobs/uploads/{UPLOAD}", "repository:team/app:pull,push"),
    ("GET", f"/v2/team/app/referrers/{ZERO}", "repository:team/app:pull"),
    ("GET", "/metrics", ""),
]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def push_blob(client: httpx.Client, name: str, data: bytes, headers: dict[str, str]) -> str:
    digest = digest_of(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", headers=headers, params={"digest": digest},
                    content=data)  # fmt: skip
    assert r.status_code == 201, r.text
    return digest


def push_image(
    client: httpx.Client, name: str, image: Image, tag: str, headers: dict[str, str]
) -> None:
    for data in image.blobs.values():
        push_blob(client, name, data, headers)
    r = client.put(f"/v2/{name}/manifests/{tag}", content=image.manifest,
                   headers={"Content-Type": OCI_MANIFEST, **headers})  # fmt: skip
    assert r.status_code == 201, r.text


# -- configuration ------------------------------------------------------------------------------


def test_auth_configuration_errors(tmp_path: Path) -> None:
    md5 = write(tmp_path / "md5", "bob:$apr1$abc$defghijklmnopqrstuvwx\n")
    good = write(tmp_path / "good", f"bob:{bcrypt.hashpw(b'x', bcrypt.gensalt(4)).decode()}\n")
    cert = write(tmp_path / "root.pem", pem(certificate(rsa_key(), "root", ca=True)))
    cases = [
        (f"auth:\n  htpasswd:\n    realm: r\n    path: {md5}\n", "no bcrypt hash"),
        (f"auth:\n  htpasswd:\n    realm: r\n    path: {tmp_path / 'none'}\n", "cannot read"),
        (f"auth:\n  htpasswd:\n    path: {good}\n", "auth.htpasswd.realm is required"),
        ("auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n", "rootcertbundle or jwks"),
        (f"auth:\n  token:\n    realm: r\n    issuer: i\n    rootcertbundle: {cert}\n",
         "auth.token.service is required"),
        (f"auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    rootcertbundle: {md5}\n",
         "auth.token.rootcertbundle"),
        (f"auth:\n  htpasswd:\n    realm: r\n    path: {good}\n  token:\n    realm: r\n",
         "exactly one"),
        ("auth:\n  silly:\n    realm: r\n", "development only"),
        ("http:\n  tls:\n    certificate: /nonexistent\n", "certificate and key"),
        (f"http:\n  tls:\n    certificate: {cert}\n    key: /nonexistent\n", "http.tls.key"),
        (f"http:\n  tls:\n    certificate: {cert}\n    key: {cert}\n    minimumtls: tls1.0\n",
         "minimumtls"),
        ("http:\n  tls:\n    clientcas: [/x]\n", "not supported"),
    ]  # fmt: skip
    config = tmp_path / "config.yml"
    for text, message in cases:
        config.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(config)
    config.write_text(f"auth:\n  htpasswd:\n    realm: r\n    path: {good}\n")
    assert load_config(config).auth == {"htpasswd": {"realm": "r", "path": str(good)}}


def test_libtrust_key_id_format() -> None:
    kid = libtrust_key_id(rsa_key().public_key())
    groups = kid.split(":")
    # distribution's key IDs: 240 bits of SHA-256 in base32, twelve groups of four.
    assert len(groups) == 12 and all(len(g) == 4 for g in groups)
    assert set("".join(groups)) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


# -- htpasswd -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[["--no-native-front"], []], ids=["app", "front"])
def htpasswd_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("htpasswd")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    # htpasswd -B writes $2y$; bcrypt libraries write $2b$: both name the same algorithm.
    users = write(base / "htpasswd", f"# users\nalice:{hashed.replace('$2b$', '$2y$', 1)}\n")
    config = write(
        base / "config.yml",
        f"auth:\n  htpasswd:\n    realm: ocistore-basic\n    path: {users}\n",
    )
    extra = ["--config", str(config), *request.param]
    with ocistore_server(base / "root", extra=extra) as server:
        yield server, users


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
def test_htpasswd_every_endpoint_challenges(
    htpasswd_server: tuple[Server, Path], method: str, path: str, scope: str
) -> None:
    server, _ = htpasswd_server
    with server.client() as client:
        r = client.request(method, path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="ocistore-basic"'
    if method != "HEAD":
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_htpasswd_credentials(htpasswd_server: tuple[Server, Path]) -> None:
    server, users = htpasswd_server
    with server.client() as client:
        assert client.get("/v2/", headers=basic("alice", "wrong")).status_code == 401
        assert client.get("/v2/", headers=basic("mallory", "s3cret")).status_code == 401
        r = client.get("/v2/", headers={"Authorization": "Basic !!!not-base64"})
        assert r.status_code == 401
        assert client.get("/v2/", headers=basic("alice", "s3cret")).status_code == 200
        # htpasswd authenticates; any user may then push and pull anything.
        push_image(client, "team/app", make_image(1, layers=2), "v1", basic("alice", "s3cret"))
        assert client.get("/v2/team/app/manifests/v1").status_code == 401
        # The file is re-read when it changes: a new user logs in, a removed one cannot.
        hashed = bcrypt.hashpw(b"pw2", bcrypt.gensalt(4)).decode()
        users.write_text(f"bob:{hashed}\n")
        os.utime(users, ns=(0, 10**18))
        assert client.get("/v2/", headers=basic("bob", "pw2")).status_code == 200
        assert client.get("/v2/", headers=basic("alice", "s3cret")).status_code == 401


# -- tokens -------------------------------------------------------------------------------------


@dataclass
class TokenSetup:
    server: Server
    issuer: TokenServer
    rsa: PrivateKey
    rsa_kid: str
    ec: PrivateKey
    ec_kid: str
    x5c_chain: list[str]
    x5c_key: PrivateKey
    jwks_key: PrivateKey


@pytest.fixture(scope="module", params=[["--no-native-front"], []], ids=["app", "front"])
def tokens(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TokenSetup]:
    base = tmp_path_factory.mktemp("token")
    rsa_root, ec_root = rsa_key(), ec_key()
    rsa_cert = certificate(rsa_root, "token-signer-rsa", ca=True)
    ec_cert = certificate(ec_root, "token-signer-ec")
    leaf_key = ec_key()
    leaf = certificate(leaf_key, "token-signer-leaf", issuer=(rsa_root, rsa_cert))
    bundle = write(base / "bundle.pem", pem(rsa_cert, ec_cert))
    jwks_key = rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(jwks_key.public_key()))
    jwks = write(base / "keys.jwks", json.dumps({"keys": [{**jwk, "kid": "jwks-key-1"}]}))
    rsa_kid, ec_kid = libtrust_key_id(rsa_root.public_key()), libtrust_key_id(ec_root.public_key())

    def policy(user: str, kind: str, name: str, action: str) -> bool:
        return not name.startswith("private/") or user == "admin"

    users = {"alice": "wonderland", "admin": "root"}
    with token_server(rsa_root, rsa_kid, users, policy) as issuer:
        config = write(
            base / "config.yml",
            "auth:\n  token:\n"
            f"    realm: {issuer.url}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {bundle}\n    jwks: {jwks}\n",
        )
        extra = ["--config", str(config), *request.param]
        with ocistore_server(base / "root", extra=extra) as server:
            yield TokenSetup(
                server,
                issuer,
                rsa_root,
                rsa_kid,
                ec_root,
                ec_kid,
                x5c(leaf, rsa_cert),
                leaf_key,
                jwks_key,
            )


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
def test_token_every_endpoint_challenges(
    tokens: TokenSetup, method: str, path: str, scope: str
) -> None:
    with tokens.server.client() as client:
        r = client.request(method, path)
    assert r.status_code == 401
    scheme, params = parse_challenge(r.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params["realm"] == tokens.issuer.url and params["service"] == SERVICE
    assert params.get("scope", "") == scope
    if method != "HEAD":
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_token_scopes_per_repository_and_action(tokens: TokenSetup) -> None:
    def token(*access: tuple[str, str, list[str]]) -> dict[str, str]:
        return bearer(make_token(tokens.rsa, kid=tokens.rsa_kid, access=list(access)))

    push = token(("repository", "team/app", ["pull", "push"]))
    pull = token(("repository", "team/app", ["pull"]))
    other = token(("repository", "team/other", ["pull", "push"]))
    image = make_image(2, layers=1)
    with tokens.server.client() as client:
        assert client.get("/v2/", headers=pull).status_code == 200
        # Pull alone cannot start an upload: 403 DENIED, challenge naming the scope needed.
        r = client.post("/v2/team/app/blobs/uploads/", headers=pull)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
        _, params = parse_challenge(r.headers["WWW-Authenticate"])
        assert params["scope"] == "repository:team/app:pull,push"
        assert params["error"] == "insufficient_scope"
        assert client.post("/v2/team/app/blobs/uploads/", headers=other).status_code == 403
        push_image(client, "team/app", image, "v1", push)
        assert client.get("/v2/team/app/manifests/v1", headers=pull).content == image.manifest
        assert client.get("/v2/team/app/manifests/v1", headers=other).status_code == 403
        assert client.get("/v2/team/app/tags/list", headers=pull).json()["tags"] == ["v1"]
        # Delete is its own action.
        layer = digest_of(image.layers[-1])
        assert client.delete(f"/v2/team/app/blobs/{layer}", headers=push).status_code == 403
        everything = token(("repository", "team/app", ["*"]))
        assert client.delete(f"/v2/team/app/blobs/{layer}", headers=everything).status_code == 202
        # The catalog needs registry:catalog:*.
        r = client.get("/v2/_catalog", headers=push)
        assert r.status_code == 403
        assert parse_challenge(r.headers["WWW-Authenticate"])[1]["scope"] == ("registry:catalog:*")
        catalog = token(("registry", "catalog", ["*"]))
        assert client.get("/v2/_catalog", headers=catalog).json() == {"repositories": ["team/app"]}


def test_token_mount_needs_pull_on_the_source(tokens: TokenSetup) -> None:
    data = os.urandom(1000)
    source = bearer(make_token(tokens.rsa, kid=tokens.rsa_kid,
                               access=[("repository", "mount/src", ["pull", "push"])]))  # fmt: skip
    target_only = bearer(make_token(tokens.rsa, kid=tokens.rsa_kid,
                                    access=[("repository", "mount/dst", ["pull", "push"])]))  # fmt: skip
    both = bearer(make_token(tokens.rsa, kid=tokens.rsa_kid, access=[
        ("repository", "mount/dst", ["pull", "push"]), ("repository", "mount/src", ["pull"])]))  # fmt: skip
    with tokens.server.client() as client:
        digest = push_blob(client, "mount/src", data, source)
        query = {"mount": digest, "from": "mount/src"}
        # Without pull on the source the mount is ignored: a plain upload, nothing revealed.
        r = client.post("/v2/mount/dst/blobs/uploads/", params=query, headers=target_only)
        assert r.status_code == 202
        r = client.post("/v2/mount/dst/blobs/uploads/", params={"mount": digest},
                        headers=target_only)  # fmt: skip
        assert r.status_code == 202
        assert client.head(f"/v2/mount/dst/blobs/{digest}", headers=target_only).status_code == 404
        r = client.post("/v2/mount/dst/blobs/uploads/", params=query, headers=both)
        assert r.status_code == 201
        assert client.get(f"/v2/mount/dst/blobs/{digest}", headers=target_only).content == data


def test_token_signatures_and_claims(tokens: TokenSetup) -> None:
    access = [("repository", "team/app", ["pull"])]
    forger = rsa_key()
    untrusted = certificate(forger, "forger", ca=True)
    good = [
        make_token(tokens.rsa, kid=tokens.rsa_kid, access=access),
        make_token(tokens.rsa, kid=tokens.rsa_kid, access=access, algorithm="PS256"),
        make_token(tokens.ec, kid=tokens.ec_kid, access=access),  # ES256
        make_token(tokens.x5c_key, chain=tokens.x5c_chain, access=access),  # leaf signed by root
        make_token(tokens.jwks_key, kid="jwks-key-1", access=access),  # a key of the JWKS file
        make_token(tokens.rsa, kid=tokens.rsa_kid, access=access, audience=["x", SERVICE]),
        make_token(tokens.rsa, kid=tokens.rsa_kid, access=access, expires_in=-30),  # leeway
    ]
    bad = {
        "expired": make_token(tokens.rsa, kid=tokens.rsa_kid, access=access, expires_in=-120),
        "not yet valid": make_token(
            tokens.rsa, kid=tokens.rsa_kid, access=access, not_before_in=600
        ),
        "forged with a trusted kid": make_token(forger, kid=tokens.rsa_kid, access=access),
        "untrusted x5c": make_token(forger, chain=x5c(untrusted), access=access),
        "x5c leaf with another key": make_token(forger, chain=tokens.x5c_chain, access=access),
        "unknown kid": make_token(forger, kid=libtrust_key_id(forger.public_key()), access=access),
        "forged with the JWKS kid": make_token(forger, kid="jwks-key-1", access=access),
        "no key named": make_token(tokens.rsa, access=access),
        "wrong audience": make_token(
            tokens.rsa, kid=tokens.rsa_kid, access=access, audience="other"
        ),
        "wrong issuer": make_token(tokens.rsa, kid=tokens.rsa_kid, access=access, issuer="evil"),
        "EC key used as RS256": make_token(
            tokens.rsa, kid=tokens.ec_kid, access=access, algorithm="RS256"
        ),
        "HS256 with the public key as secret": jwt.encode(
            {"iss": ISSUER, "aud": SERVICE, "exp": 2**40, "access": []},
            key_pem(tokens.rsa)[:64],
            algorithm="HS256",
            headers={"kid": tokens.rsa_kid},
        ),
        "alg none": _unsigned({"alg": "none", "kid": tokens.rsa_kid}, access),
        "garbage": "not.a.token",
        "tampered": _tamper(make_token(tokens.rsa, kid=tokens.rsa_kid, access=access)),
    }
    with tokens.server.client() as client:
        for token in good:
            r = client.get("/v2/team/app/tags/list", headers=bearer(token))
            assert r.status_code in (200, 404), (jwt.get_unverified_header(token), r.text)
        for why, token in bad.items():
            r = client.get("/v2/team/app/tags/list", headers=bearer(token))
            assert r.status_code == 401, why
            assert r.json()["errors"][0]["code"] == "UNAUTHORIZED", why
            params = parse_challenge(r.headers["WWW-Authenticate"])[1]
            assert params["error"] == "invalid_token", why
        # Basic credentials are no bearer token.
        assert client.get("/v2/", headers=basic("alice", "wonderland")).status_code == 401


def _unsigned(header: dict[str, str], access: list[tuple[str, str, list[str]]]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"iss": ISSUER, "aud": SERVICE, "exp": 2**40,
              "access": [{"type": t, "name": n, "actions": a} for t, n, a in access]}  # fmt: skip
    return f"{part(header)}.{part(claims)}."


def _tamper(token: str) -> str:
    header, claims, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["access"] = [{"type": "repository", "name": "team/app", "actions": ["*"]}]
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_skopeo_with_credentials_through_the_token_service(
    tokens: TokenSetup, tmp_path: Path
) -> None:
    source = Layout(tmp_path / "source")
    source.index(image_manifest(source, "amd64", [3_000_000, 50_000]), "v1")
    host = tokens.server.url.removeprefix("http://")
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
           f"oci:{source.root}:v1", f"docker://{host}/skopeo/app:v1")  # fmt: skip
    out = tmp_path / "out"
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", "alice:wonderland",
           f"docker://{host}/skopeo/app:v1", f"oci:{out}:v1")  # fmt: skip
    assert blobs_of(out) == blobs_of(source.root)
    # The registry sent skopeo to the token service with its service name and scopes.
    scopes = {s for q in tokens.issuer.requests for s in q.get("scope", [])}
    assert "repository:skopeo/app:pull,push" in scopes
    assert all(q.get("service") == [SERVICE] for q in tokens.issuer.requests)
    # A user the policy keeps out of a repository: skopeo fails with the registry's denial.
    done = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
         "--dest-creds", "alice:wonderland", f"oci:{source.root}:v1",
         f"docker://{host}/private/app:v1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "403 (Forbidden)" in done.stderr, done.stderr
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", "admin:root",
           f"oci:{source.root}:v1", f"docker://{host}/private/app:v1")  # fmt: skip
    # Wrong password: the token service refuses, so does skopeo.
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "alice:nope",
         f"docker://{host}/skopeo/app:v1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tls")
    ca_key = rsa_key()
    ca = certificate(ca_key, "ocistore test CA", ca=True)
    server_key = ec_key()
    server_cert = certificate(server_key, "127.0.0.1", issuer=(ca_key, ca), ip="127.0.0.1")
    certs = base / "certs.d"
    certs.mkdir()
    return {
        "ca": write(certs / "ca.crt", pem(ca)),
        "certs": certs,
        "cert": write(base / "server.crt", pem(server_cert)),
        "key": write(base / "server.key", key_pem(server_key)),
        "base": base,
    }


@pytest.mark.parametrize("kind", ["granian", "uvicorn"])
def test_tls_with_htpasswd_and_skopeo(tls_material: dict[str, Path], kind: str) -> None:
    base = tls_material["base"] / kind
    base.mkdir()
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    users = write(base / "htpasswd", f"carol:{hashed}\n")
    config = write(
        base / "config.yml",
        f"http:\n  tls:\n    certificate: {tls_material['cert']}\n    key: {tls_material['key']}\n"
        f"auth:\n  htpasswd:\n    realm: tls-realm\n    path: {users}\n",
    )
    with ocistore_server(
        base / "root", server=kind, extra=["--config", str(config)], tls_ca=tls_material["ca"]
    ) as server:
        assert server.url.startswith("https://")
        with server.client() as client:
            assert client.get("/v2/", headers=basic("carol", "pw")).status_code == 200
        # Plain HTTP on the TLS port gets no registry answer.
        try:
            r = httpx.get(server.url.replace("https://", "http://") + "/v2/", timeout=5)
        except httpx.HTTPError:
            pass
        else:
            assert r.status_code != 200
        # An unknown CA is refused by a verifying client.
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/v2/", timeout=5)
        if kind == "granian":
            data = os.urandom(2_000_000)
            source = Layout(base / "source")
            source.index(image_manifest(source, "amd64", [len(data)]), "v1")
            host = server.url.removeprefix("https://")
            skopeo("copy", "--preserve-digests", "--dest-cert-dir", str(tls_material["certs"]),
                   "--dest-creds", "carol:pw", f"oci:{source.root}:v1",
                   f"docker://{host}/tls/app:v1")  # fmt: skip
            with server.client() as client:
                r = client.get("/v2/tls/app/tags/list", headers=basic("carol", "pw"))
                assert r.json()["tags"] == ["v1"]
                index = json.loads((source.root / "index.json").read_text())
                manifest = index["manifests"][0]["digest"]
                r = client.get(f"/v2/tls/app/manifests/{manifest}", headers={
                    "Accept": index["manifests"][0]["mediaType"], **basic("carol", "pw")})  # fmt: skip
                assert hashlib.sha256(r.content).hexdigest() == manifest.split(":")[1]
