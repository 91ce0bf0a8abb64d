"""A generated corpus of hostile requests: every answer is a spec error (never a 5xx), nothing is
written outside the root, and the registry keeps serving."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import itertools
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import Server, ocistore_server

SPEC_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
    "PAGINATION_NUMBER_INVALID",
}  # fmt: skip
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GOOD_DIGEST = "sha256:" + hashlib.sha256(b"hostile").hexdigest()

NAMES = [
    "..", "../x", "a/../../b", "%2e%2e/x", "a%2F..%2F..%2Fb", "UPPER", "a" * 300, "a//b", "a/./b",
    "%C3%A9", "a%20b", "a%00b", "-a", "_a", "a__b_", "a:b", ".", "x/_uploads", "x/_manifests/tags",
    "%2F", "a/%2e%2e/%2e%2e/b", "%c0%af", "a%ffb", "ok",
]  # fmt: skip
REFERENCES = [
    "..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "sha256:" + "0" * 63, "sha256:ZZ", "md5:abc", ":",
    "-tag", "a" * 200, "%00", "v1%2F..", "sha256:" + "0" * 64 + "%2Fx", "%ff", "t%C3%A9g", "v1",
]  # fmt: skip
DIGESTS = [
    "..", "sha256:..%2F..%2Fx", "sha256:" + "A" * 64, "sha256:" + "0" * 65, "sha512:00", "blake3:",
    ":" , "%00", "sha256%3A" + "0" * 64, GOOD_DIGEST,
]  # fmt: skip
UPLOAD_IDS = [
    "..", "%2e%2e%2f%2e%2e", "00000000-0000-0000-0000-000000000000",
    "6F9619FF-8B86-D011-B42D-00C04FC964FF", "a" * 36, "%00", "x" * 1000,
]  # fmt: skip
RANGES = [
    "bytes=", "bytes=-", "bytes=a-b", "bytes=5-1", "bytes=999999999999999999999-", "items=0-1",
    "bytes=0-1,2-3", "bytes=-99999999999999999999", "bytes=0-0", "bytes=\xff",
]  # fmt: skip
CONTENT_RANGES = [
    "",
    "0-",
    "-5",
    "a-b",
    "5-1",
    "bytes 0-4/*",
    "0-99999999999999999999999",
    "1-5",
    "\u00b2-3",
]
MANIFEST_BODIES = [
    b"", b"null", b"[]", b"{}", b'{"schemaVersion": "2"}', b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "x"}}).encode(),
    json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": GOOD_DIGEST, "size": -1}}).encode(),
    json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": GOOD_DIGEST, "size": 10**30}}).encode(),
    json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:..", "size": 1}]}).encode(),
    b'{"schemaVersion": 2, "config": ' + b"1" * 5_000_000 + b"}",
]  # fmt: skip
CONTENT_TYPES = [
    OCI_MANIFEST, "", "text/html", "application/vnd.docker.distribution.manifest.v1+prettyjws",
    OCI_MANIFEST + "; charset=\xff", "application/vnd.oci.image.index.v1+json",
]  # fmt: skip


def corpus() -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    for name in NAMES:
        yield "GET", f"/v2/{name}/tags/list", {}, b""
        yield "POST", f"/v2/{name}/blobs/uploads/", {}, b""
        yield "GET", f"/v2/{name}/manifests/v1", {}, b""
        yield "PUT", f"/v2/{name}/manifests/v1", {"Content-Type": OCI_MANIFEST}, b"{}"
    for ref in REFERENCES:
        for method in ("GET", "HEAD", "DELETE"):
            yield method, f"/v2/ok/manifests/{ref}", {}, b""
        yield "PUT", f"/v2/ok/manifests/{ref}", {"Content-Type": OCI_MANIFEST}, b"{}"
    for digest in DIGESTS:
        for method in ("GET", "HEAD", "DELETE"):
            yield method, f"/v2/ok/blobs/{digest}", {}, b""
        yield "POST", f"/v2/ok/blobs/uploads/?digest={digest}", {}, b"hostile"
        yield "POST", f"/v2/ok/blobs/uploads/?mount={digest}&from=..", {}, b""
        yield "GET", f"/v2/ok/referrers/{digest}", {}, b""
    for upload_id in UPLOAD_IDS:
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            yield method, f"/v2/ok/blobs/uploads/{upload_id}?digest={GOOD_DIGEST}", {}, b"x"
    for value in RANGES:
        yield "GET", f"/v2/ok/blobs/{GOOD_DIGEST}", {"Range": value}, b""
    for value in CONTENT_RANGES:
        yield "PATCH", "UPLOAD", {"Content-Range": value}, b"hostile"
    for body, content_type in itertools.product(MANIFEST_BODIES, CONTENT_TYPES):
        yield "PUT", "/v2/ok/manifests/v1", {"Content-Type": content_type}, body
    for query in (
        "n=-1",
        "n=x",
        "n=99999999999999999999",
        "last=%00",
        "last=" + "z" * 5000,
        "n=",
        "n=%C2%B2",
    ):
        yield "GET", f"/v2/_catalog?{query}", {}, b""
        yield "GET", f"/v2/ok/tags/list?{query}", {}, b""
    for method in ("OPTIONS", "TRACE", "PROPFIND", "CONNECT"):
        yield method, "/v2/ok/blobs/uploads/", {}, b""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("hostile")
    with ocistore_server(base / "root") as s:
        yield s


def request(
    server: Server, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value.encode("latin-1"))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_hostile_corpus(server: Server) -> None:
    cases = list(corpus())
    assert len(cases) >= 300
    # A real upload to aim the Content-Range cases at, and the blob the Range cases read.
    status, _ = request(
        server, "POST", f"/v2/ok/blobs/uploads/?digest={GOOD_DIGEST}", {}, b"hostile"
    )
    assert status == 201
    failures = []
    for method, path, headers, body in cases:
        if path == "UPLOAD":
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", "/v2/ok/blobs/uploads/", body=b"")
            path = conn.getresponse().getheader("Location") or ""
            conn.close()
        status, answer = request(server, method, path, headers, body)
        where = f"{method} {path[:80]} {headers} {body[:40]!r}"
        if status >= 500:
            failures.append(f"{status} for {where}")
            continue
        if status >= 400 and method != "HEAD":
            try:
                codes = {e["code"] for e in json.loads(answer)["errors"]}
            except (ValueError, KeyError, TypeError):
                failures.append(f"{status} without a spec error body for {where}: {answer[:80]!r}")
                continue
            if not codes <= SPEC_CODES:
                failures.append(f"{status} with codes {codes} for {where}")
    assert failures == []
    # Still serving, and nothing was written outside the root.
    assert request(server, "GET", "/v2/", {}, b"")[0] == 200
    root = Path(server.root)
    outside = sorted(p.name for p in root.parent.iterdir())
    assert outside == sorted(["root", *(p.name for p in root.parent.glob("ocistore-*.log"))])


@pytest.fixture(scope="module", params=["front", "app"])
def either(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server behind the native front, or the application alone."""
    base = tmp_path_factory.mktemp(f"truncated-{request.param}")
    extra = [] if request.param == "front" else ["--no-native-front"]
    with ocistore_server(base / "root", extra=extra) as s:
        yield s


def answer_to_half_sent(port: int, head: str, body: bytes) -> bytes:
    """What the server says to a request whose body stops short (the client shuts its side of
    the connection): its status line, or nothing if it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + body)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        received = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in received and (chunk := s.recv(4096)):
                received += chunk
        return received.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    "case",
    ["single-request upload", "manifest", "chunked manifest"],
)
def test_a_body_cut_short_is_a_client_error_and_stores_nothing(either: Server, case: str) -> None:
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    if case == "single-request upload":
        head = (
            f"POST /v2/cut/short/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        body = data[:600]
    elif case == "manifest":
        head = (
            f"PUT /v2/cut/short/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(manifest)}\r\nContent-Type: {OCI_MANIFEST}\r\n\r\n"
        )
        body = manifest[:30]
    else:
        head = (
            f"PUT /v2/cut/short/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
            f"Transfer-Encoding: chunked\r\nContent-Type: {OCI_MANIFEST}\r\n\r\n"
        )
        body = f"{len(manifest):x}\r\n".encode() + manifest[:30]  # cut mid-chunk
    status_line = answer_to_half_sent(either.port, head, body)
    if status_line:  # a closed connection is an answer too
        status = int(status_line.split()[1])
        assert 400 <= status < 500, status_line
    assert request(either, "HEAD", f"/v2/cut/short/blobs/{digest}", {}, b"")[0] == 404
    assert request(either, "GET", "/v2/cut/short/manifests/v1", {}, b"")[0] in (404,)
    assert request(either, "GET", "/v2/", {}, b"")[0] == 200


def test_truncated_bodies_do_not_hurt_the_server(server: Server) -> None:
    port = server.port
    for target in (f"/v2/ok/blobs/uploads/?digest={GOOD_DIGEST}", "/v2/ok/manifests/v1"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                f"Content-Type: {OCI_MANIFEST}\r\n\r\n".encode()
                + b"x" * 1000
            )
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            with contextlib.suppress(OSError):
                s.recv(100)  # whatever the server answers, or a closed connection
    assert request(server, "GET", "/v2/", {}, b"")[0] == 200
    # The truncated single-request upload stored nothing under the digest it named.
    assert request(server, "HEAD", f"/v2/ok/blobs/sha256:{'1' * 64}", {}, b"")[0] == 404
    assert os.path.isdir(server.root)
