"""The native front (`ocistore serve --native-front`): for every blob read it answers itself, the
same status, headers and bytes as the application behind it; everything else passed on; its
requests in the application's metrics and access log; nothing a client sends can pose as the
front."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from ocistore import Registry, _core
from ocistore.server.config import Config, ConfigError
from ocistore.server.serve import serve
from ocistore.storage import OCI_INDEX

from .images import LAYER, OCI_MANIFEST, descriptor, make_image
from .object_stores import Backend, s3_server
from .servers import Server, ocistore_server

REPO = "front/test"
#: Crosses the front's 2 MiB read block twice.
BIG = os.urandom(4 * 1024 * 1024 + 12345)
SMALL = b"small blob behind the front"
#: An image pushed as ``v1`` into ``REPO``: manifest GETs and HEADs by tag and by digest.
IMAGE = make_image(77)
ACCEPT_OCI = {"Accept": OCI_MANIFEST}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = digest_of(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    r = client.put(f"{r.headers['location']}?digest={digest}", content=data)
    assert r.status_code == 201, r.text
    return digest


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """The application alone and the front before another application, on one root."""
    root = tmp_path_factory.mktemp("front") / "root"
    with (
        ocistore_server(root, extra=["--no-native-front"]) as app,
        ocistore_server(root) as front,
        front.client() as client,
    ):
        push(client, REPO, BIG)  # through the front: uploads pass through to the application
        push(client, REPO, SMALL)
        push(client, REPO, b"")
        push(client, "front/other", SMALL)
        for data in IMAGE.blobs.values():
            push(client, REPO, data)
        r = client.put(f"/v2/{REPO}/manifests/v1", content=IMAGE.manifest,
                       headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        assert r.status_code == 201, r.text
        yield app, front


def answered_by_front(response: httpx.Response) -> bool:
    # granian names itself in every response; the front's own answers carry no Server header.
    return "server" not in response.headers


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "server")}
    return response.status_code, headers, response.content


BIG_PATH = f"/v2/{REPO}/blobs/{digest_of(BIG)}"
EMPTY_PATH = f"/v2/{REPO}/blobs/{digest_of(b'')}"
BLOCK = 2 * 1024 * 1024

# (method, path, headers, whether the front answers it itself)
CASES: list[tuple[str, str, dict[str, str], bool]] = [
    ("GET", BIG_PATH, {}, True),
    ("HEAD", BIG_PATH, {}, True),
    ("GET", f"/v2/{REPO}/blobs/{digest_of(SMALL)}", {}, True),
    ("GET", EMPTY_PATH, {}, True),
    ("HEAD", EMPTY_PATH, {}, True),
    ("GET", BIG_PATH, {"Range": "bytes=0-0"}, True),
    ("GET", BIG_PATH, {"Range": "bytes=100-"}, True),
    ("GET", BIG_PATH, {"Range": "bytes=-10"}, True),
    ("GET", BIG_PATH, {"Range": f"bytes={BLOCK - 5}-{2 * BLOCK + 5}"}, True),
    ("GET", BIG_PATH, {"Range": "bytes=4000000-999999999"}, True),
    ("GET", BIG_PATH, {"Range": "bytes=-999999999"}, True),
    ("HEAD", BIG_PATH, {"Range": "bytes=10-19"}, True),
    # Passed on: the application ignores these ranges, refuses those, answers If-None-Match.
    ("GET", BIG_PATH, {"Range": "bytes=0-1,5-6"}, False),
    ("GET", BIG_PATH, {"Range": "bytes=9-2"}, False),
    ("GET", BIG_PATH, {"Range": "lines=0-1"}, False),
    ("GET", BIG_PATH, {"Range": "bytes=999999999-"}, False),
    ("GET", BIG_PATH, {"Range": "bytes=-0"}, False),
    ("GET", EMPTY_PATH, {"Range": "bytes=0-"}, False),
    ("GET", BIG_PATH, {"If-None-Match": f'"{digest_of(BIG)}"'}, False),
    ("GET", BIG_PATH, {"If-None-Match": '"something-else"'}, False),
    ("GET", f"/v2/front/other/blobs/{digest_of(BIG)}", {}, False),  # not linked there
    ("GET", f"/v2/{REPO}/blobs/{digest_of(b'never pushed')}", {}, False),
    ("GET", f"/v2/nothing/here/blobs/{digest_of(BIG)}", {}, False),
    ("GET", f"/v2/{REPO}/blobs/sha256:abc", {}, False),
    ("GET", f"/v2/Front/Test/blobs/{digest_of(BIG)}", {}, False),
    ("GET", f"/v2/front%2Ftest/blobs/{digest_of(BIG)}", {}, False),
    ("DELETE", f"/v2/front/other/blobs/{digest_of(b'never pushed')}", {}, False),
    # Manifests by tag and by digest, the Accept header admitting them (or absent).
    ("GET", f"/v2/{REPO}/manifests/v1", ACCEPT_OCI, True),
    ("HEAD", f"/v2/{REPO}/manifests/v1", ACCEPT_OCI, True),
    ("GET", f"/v2/{REPO}/manifests/{IMAGE.digest}", {}, True),
    ("HEAD", f"/v2/{REPO}/manifests/{IMAGE.digest}", {"Accept": "application/*"}, True),
    ("GET", f"/v2/{REPO}/manifests/v1", {"Accept": f"text/plain, {OCI_MANIFEST};q=0.9"}, True),
    # Passed on: an Accept that excludes it, unknown tags and revisions, another repository,
    # If-None-Match, a bad reference.
    (
        "GET",
        f"/v2/{REPO}/manifests/v1",
        {"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        False,
    ),
    ("GET", f"/v2/{REPO}/manifests/v2", ACCEPT_OCI, False),
    ("HEAD", f"/v2/{REPO}/manifests/{digest_of(b'no manifest')}", {}, False),
    ("GET", f"/v2/front/other/manifests/{IMAGE.digest}", {}, False),
    ("GET", f"/v2/{REPO}/manifests/v1", {"If-None-Match": f'"{IMAGE.digest}"'}, False),
    ("GET", f"/v2/{REPO}/manifests/-bad-", {}, False),
    ("GET", f"/v2/{REPO}/manifests/sha256:abc", {}, False),
    ("GET", "/v2/", {}, False),
    # Tag listings: the front's, but an unknown repository's and a HEAD (which is not a route).
    ("GET", f"/v2/{REPO}/tags/list", {}, True),
    ("GET", f"/v2/{REPO}/tags/list?n=1&last=a", {}, True),
    ("GET", "/v2/front/nothing/tags/list", {}, False),
    ("HEAD", f"/v2/{REPO}/tags/list", {}, False),
    ("POST", "/v2/_catalog", {}, False),
]


@pytest.mark.parametrize(("method", "path", "headers", "by_front"), CASES)
def test_same_answer_as_the_application(
    pair: tuple[Server, Server], method: str, path: str, headers: dict[str, str], by_front: bool
) -> None:
    app, front = pair
    with app.client() as a, front.client() as f:
        expected = a.request(method, path, headers=headers)
        got = f.request(method, path, headers=headers)
    assert not answered_by_front(expected)
    assert answered_by_front(got) == by_front
    assert comparable(got) == comparable(expected)


def test_streamed_get_matches_the_blob(pair: tuple[Server, Server]) -> None:
    _, front = pair
    hasher = hashlib.sha256()
    with front.client() as client, client.stream("GET", BIG_PATH) as r:
        assert r.status_code == 200 and answered_by_front(r)
        for chunk in r.iter_bytes():
            hasher.update(chunk)
    assert "sha256:" + hasher.hexdigest() == digest_of(BIG)


def blob_requests(metrics: str, method: str, status: int) -> float:
    pattern = (
        rf'^ocistore_http_requests_total\{{method="{method}",route="blob",status="{status}"\}} '
        r"(\S+)$"
    )
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_front_requests_reach_metrics_and_access_log(pair: tuple[Server, Server]) -> None:
    _, front = pair
    with front.client() as client:
        before = client.get("/metrics").text
        for i in range(5):
            r = client.get(BIG_PATH, headers={"Range": f"bytes={i}-{i + 99}"})
            assert r.status_code == 206 and answered_by_front(r)
        r = client.head(BIG_PATH)
        assert r.status_code == 200 and answered_by_front(r)
        # /metrics through the front sends the front's records first: no waiting.
        after = client.get("/metrics").text
    assert blob_requests(after, "GET", 206) - blob_requests(before, "GET", 206) == 5
    assert blob_requests(after, "HEAD", 200) - blob_requests(before, "HEAD", 200) == 1
    records = access_records(front, lambda r: r.get("status") == 206 and r.get("route") == "blob")
    assert len(records) >= 5
    assert {r["path"] for r in records} == {BIG_PATH}
    assert {r["remote"] for r in records} == {"127.0.0.1"}
    assert {r["bytes_out"] for r in records[-5:]} == {100}


def access_records(server: Server, keep: object, wait: float = 5) -> list[dict[str, object]]:
    deadline = time.monotonic() + wait
    while True:
        records = []
        for line in server.log.read_text().splitlines():
            if '"ocistore.access"' in line:
                record = json.loads(line)
                if keep(record):  # type: ignore[operator]
                    records.append(record)
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_clients_cannot_pose_as_the_front(pair: tuple[Server, Server]) -> None:
    _, front = pair
    forged_path = f"/v2/{REPO}/blobs/{digest_of(b'forged')}"
    with front.client() as client:
        before = client.get("/metrics").text
        forged = [["blob", "GET", 299, 0.1, 0, 0, forged_path, "6.6.6.6", 1]]
        r = client.post(
            "/_ocistore/front/observations",
            content=json.dumps(forged).encode(),
            headers={"x-ocistore-front": "guess", "content-type": "application/json"},
        )
        assert r.status_code == 404
        assert r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        r = client.get(
            "/v2/_catalog", headers={"x-ocistore-client": "6.6.6.6:1", "x-ocistore-front": "x"}
        )
        assert r.status_code == 200
        after = client.get("/metrics").text
    assert blob_requests(after, "GET", 299) == blob_requests(before, "GET", 299) == 0
    records = access_records(front, lambda r: r.get("path") == "/v2/_catalog")
    assert records and {r["remote"] for r in records} == {"127.0.0.1"}
    assert not access_records(front, lambda r: r.get("path") == forged_path, wait=0)


def test_with_htpasswd_the_application_decides(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"u:{hashed}\n")
    config = tmp_path / "config.yml"
    config.write_text(f"auth:\n  htpasswd:\n    realm: r\n    path: {tmp_path / 'htpasswd'}\n")
    extra = ["--config", str(config), "--native-front"]
    with ocistore_server(tmp_path / "root", extra=extra) as server, server.client() as client:
        client.auth = httpx.BasicAuth("u", "pw")
        r = client.post("/v2/a/b/blobs/uploads/")
        assert r.status_code == 202 and answered_by_front(r)
        r = client.put(f"{r.headers['location']}?digest={digest_of(SMALL)}", content=SMALL)
        assert r.status_code == 201 and answered_by_front(r)
        r = client.get(f"/v2/a/b/blobs/{digest_of(SMALL)}")
        assert r.status_code == 200 and r.content == SMALL and answered_by_front(r)
        records = access_records(server, lambda r: r.get("route") == "blob")
        assert records and {r["user"] for r in records} == {"u"}
        for auth in (None, httpx.BasicAuth("u", "wrong"), httpx.BasicAuth("x", "pw")):
            client.auth = auth
            for method in ("GET", "HEAD"):
                r = client.request(method, f"/v2/a/b/blobs/{digest_of(SMALL)}")
                assert r.status_code == 401 and not answered_by_front(r)
            r = client.post("/v2/a/b/blobs/uploads/")
            assert r.status_code == 401 and not answered_by_front(r)
        # Asking for grants is the front's alone.
        client.auth = httpx.BasicAuth("u", "pw")
        r = client.get("/_ocistore/front/authorize?name=a/b&push=1")
        assert r.status_code in (401, 404) and not answered_by_front(r)


def test_grants_end_with_the_token(tmp_path: Path) -> None:
    import jwt

    from .auth_material import ISSUER, SERVICE, make_token, rsa_key

    key = rsa_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "keys.jwks").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    config = tmp_path / "config.yml"
    config.write_text(
        f"auth:\n  token:\n    realm: http://127.0.0.1:9/token\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    jwks: {tmp_path / 'keys.jwks'}\n"
    )
    extra = ["--config", str(config), "--native-front"]
    with ocistore_server(tmp_path / "root", extra=extra) as server, server.client() as client:
        pull_only = make_token(key, kid="k1", access=[("repository", "a/b", ["pull"])])
        r = client.post("/v2/a/b/blobs/uploads/", headers={"Authorization": f"Bearer {pull_only}"})
        assert r.status_code == 403 and not answered_by_front(r)
        # Expired 55 s ago: valid for 5 s more within the 60 s leeway distribution allows, so
        # the application grants it for those 5 s, not for FRONT_GRANT_SECONDS.
        short = make_token(
            key, kid="k1", access=[("repository", "a/b", ["pull", "push"])], expires_in=-55
        )
        expires = int(time.time() - 55) + 60
        headers = {"Authorization": f"Bearer {short}"}
        r = client.post("/v2/a/b/blobs/uploads/", headers=headers)
        assert r.status_code == 202 and answered_by_front(r)
        location = f"{r.headers['location']}?digest={digest_of(SMALL)}"
        assert client.put(location, content=SMALL, headers=headers).status_code == 201
        path = f"/v2/a/b/blobs/{digest_of(SMALL)}"
        r = client.get(path, headers={"Authorization": f"Bearer {pull_only}"})
        assert r.status_code == 200 and answered_by_front(r)
        time.sleep(max(0.0, expires - time.time()) + 0.5)
        r = client.get(path, headers=headers)
        assert r.status_code == 401 and not answered_by_front(r)


@pytest.mark.parametrize("kind", ["granian", "uvicorn"])
def test_stops_cleanly_on_sigterm(tmp_path: Path, kind: str) -> None:
    """SIGTERM to the server (its own process; granian stops its workers): the front stops,
    then the application, the exit status is 0 and the private socket's directory is gone."""
    private = set(Path(tempfile.gettempdir()).glob("ocistore-front-*"))
    with ocistore_server(tmp_path / "root", server=kind) as server:
        with server.client() as client:
            push(client, "a/b", SMALL)
        ours = set(Path(tempfile.gettempdir()).glob("ocistore-front-*")) - private
        assert len(ours) == 1 and (ours.pop() / "app.sock").is_socket()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0, server.log.read_text()
    assert set(Path(tempfile.gettempdir()).glob("ocistore-front-*")) <= private


@pytest.mark.parametrize("kind", ["granian", "uvicorn"])
def test_sigterm_stops_the_front_before_the_application(tmp_path: Path, kind: str) -> None:
    """SIGTERM: the front stops first, with the application still behind it. A request the
    application is answering finishes, a new connection is refused at once (not answered 502
    by a front whose application is gone), and the records of requests the front answered just
    before the signal still reach the access log."""
    image = make_image(7, layers=1)
    with ocistore_server(tmp_path / "root", server=kind) as server:
        with server.client() as client:
            for blob in image.blobs.values():
                push(client, REPO, blob)
        manifest_path = f"/v2/{REPO}/manifests/v1"
        length = len(image.manifest)
        in_flight = send_head(
            server, "PUT", manifest_path, length, image.manifest[:10], OCI_MANIFEST
        )
        in_flight.settimeout(10)
        layer_path = f"/v2/{REPO}/blobs/{digest_of(image.layers[0])}"
        with server.client() as client:
            r = client.get(layer_path)
            assert r.status_code == 200 and answered_by_front(r)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # until the front has closed its listening socket
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: the handshake met the listening socket as it closed; refused after.
                break
            assert time.monotonic() < deadline, "the front still accepts after SIGTERM"
            time.sleep(0.05)
        in_flight.sendall(image.manifest[10:])
        answer = in_flight.recv(65536).decode("latin-1")
        in_flight.close()
        assert answer.startswith("HTTP/1.1 201"), answer
        assert server.proc.wait(timeout=30) == 0, server.log.read_text()
        records = access_records(server, lambda r: r.get("path") == layer_path, wait=0)
        assert [(r["method"], r["status"]) for r in records] == [("GET", 200)]
    stored = Registry(tmp_path / "root").repository(REPO).manifests().get(image.digest)
    assert stored.payload() == image.manifest


def test_workers_hold_none_of_the_fronts_sockets(pair: tuple[Server, Server]) -> None:
    """The application's workers start as fresh processes: a forked worker would keep its own
    copy of the front's listening socket and of every client connection open at the fork, and
    a connection the front closes would then stay open (no FIN) until that worker exits."""
    _, front = pair
    port = front.port
    with front.client() as client:
        assert client.get("/v2/").status_code == 200  # a client connection open meanwhile
        front_inodes = tcp_socket_inodes(front.proc.pid, port)
        assert front_inodes, "the front's own sockets are on the port"
        workers = descendants(front.proc.pid)
        assert workers, "granian runs its workers as child processes"
        for pid in workers:
            assert not tcp_socket_inodes(pid, port), f"worker {pid} holds a socket of the front"


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def tcp_socket_inodes(pid: int, port: int) -> set[str]:
    """Inodes of the TCP sockets with local port ``port`` that process ``pid`` holds."""
    on_port = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                on_port.add(fields[9])
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:[") and target[8:-1] in on_port:
            held.add(target[8:-1])
    return held


# -- request bodies that stall ---------------------------------------------------------------

#: A config with a short `http.bodyidletimeout`, and the server's flags: the same cases hold
#: with the front (its own uploads and the bodies it passes on) and with the application alone.
STALL_SERVERS = {"front": ["--native-front"], "app": ["--no-native-front"]}


@pytest.fixture(params=list(STALL_SERVERS))
def impatient(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "config.yml"
    config.write_text("http:\n  bodyidletimeout: 1s\n")
    extra = ["--config", str(config), *STALL_SERVERS[request.param]]
    with ocistore_server(tmp_path / "root", extra=extra) as server:
        yield server


def send_head(
    server: Server,
    method: str,
    path: str,
    length: int,
    body: bytes,
    content_type: str = "application/octet-stream",
) -> socket.socket:
    """A request whose head announces ``length`` bytes, of which only ``body`` is sent."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    received = b""
    while b"\r\n\r\n" not in received:
        piece = sock.recv(65536)
        assert piece, f"connection closed without an answer: {received!r}"
        received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, "connection closed inside the answer"
        body += piece
    return int(head.split()[1]), json.loads(body) if body else {}


def test_a_stalled_upload_body_is_given_up_and_what_arrived_resumes(impatient: Server) -> None:
    """A client that stops sending mid-PATCH (gone without closing) is answered 408 after
    `http.bodyidletimeout`; the upload is free again, keeps the bytes that arrived, and the
    client (or another) resumes from the Range it reports."""
    data = os.urandom(3 * 1024 * 1024)
    arrived = 1024 * 1024 + 5
    with impatient.client() as client:
        r = client.post(f"/v2/{REPO}/blobs/uploads/")
        location = r.headers["location"]
        sock = send_head(impatient, "PATCH", location, len(data), data[:arrived])
        started = time.monotonic()
        status, body = read_answer(sock)
        sock.close()
        assert status == 408, body
        assert 0.9 < time.monotonic() - started < 10
        assert body["errors"][0]["code"] == "UNKNOWN"  # type: ignore[index]
        assert "stalled: nothing arrived for 1 s" in body["errors"][0]["message"]  # type: ignore[index]
        r = client.get(location)
        assert r.status_code == 204 and r.headers["range"] == f"0-{arrived - 1}"
        r = client.patch(
            location,
            content=data[arrived:],
            headers={"Content-Range": f"{arrived}-{len(data) - 1}"},
        )
        assert r.status_code == 202, r.text
        r = client.put(r.headers["location"], params={"digest": digest_of(data)})
        assert r.status_code == 201, r.text
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(data)}").content == data


def test_a_body_that_trickles_is_not_given_up(impatient: Server) -> None:
    """The limit is on silence, not on the whole body: pieces 0.4 s apart over 2.4 s, with
    `http.bodyidletimeout` 1 s, make one upload."""
    pieces = [os.urandom(1000 + i) for i in range(6)]
    data = b"".join(pieces)
    with impatient.client() as client:
        location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        sock = send_head(impatient, "PUT", f"{location}?digest={digest_of(data)}", len(data), b"")
        for piece in pieces:
            time.sleep(0.4)
            sock.sendall(piece)
        status, body = read_answer(sock)
        sock.close()
        assert status == 201, body
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(data)}").content == data


def test_a_stalled_body_the_application_reads_is_given_up(impatient: Server) -> None:
    """A manifest PUT (the application's, through the front when there is one) that stalls
    is 408 too, not a 502 from a front whose request to the application broke off."""
    with impatient.client() as client:
        sock = send_head(impatient, "PUT", f"/v2/{REPO}/manifests/stalled", 5000, b"{")
        status, body = read_answer(sock)
        sock.close()
        assert status == 408, body
        assert client.get(f"/v2/{REPO}/manifests/stalled").status_code == 404


def test_a_killed_servers_private_directory_is_removed_by_the_next(tmp_path: Path) -> None:
    """SIGKILL leaves the private socket directory behind; the next server to start removes
    it (its process is gone) and leaves alone one it cannot tell is abandoned."""
    before = set(Path(tempfile.gettempdir()).glob("ocistore-front-*"))
    unknown = Path(tempfile.mkdtemp(prefix="ocistore-front-"))  # no pid file: not ours to judge
    try:
        with ocistore_server(tmp_path / "a") as server:
            ours = set(Path(tempfile.gettempdir()).glob("ocistore-front-*")) - before - {unknown}
            assert len(ours) == 1
            killed = ours.pop()
            assert (killed / "pid").read_text().strip() == str(server.proc.pid)
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=30)
        assert killed.is_dir()
        with ocistore_server(tmp_path / "b"):
            assert not killed.exists()
            assert unknown.is_dir()
    finally:
        unknown.rmdir()


def test_a_client_that_stops_reading_a_blob_is_let_go(tmp_path: Path) -> None:
    """A GET whose client stops taking bytes (the connection open, the TCP window shut) is
    ended after `http.bodyidletimeout`, instead of holding the connection and its read-ahead
    for good; a client that reads with pauses shorter than that gets the whole blob."""
    config = tmp_path / "config.yml"
    config.write_text("http:\n  bodyidletimeout: 1s\n")
    data = os.urandom(48 * 1024 * 1024)
    with ocistore_server(tmp_path / "root", extra=["--config", str(config)]) as server:
        with server.client() as client:
            digest = push(client, REPO, data)
        request = f"GET /v2/{REPO}/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

        def reader() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.connect(("127.0.0.1", server.port))
            sock.settimeout(15)
            sock.sendall(request)
            return sock

        stalled = reader()
        time.sleep(4)  # takes nothing: the front's writes wait past the limit
        received = 0
        while piece := stalled.recv(1 << 20):
            received += len(piece)
        stalled.close()
        assert received < len(data) / 2, "the whole body went out to a client not reading"

        slow = reader()
        received = 0
        while received < len(data):
            piece = slow.recv(1 << 20)
            assert piece, f"cut off after {received} bytes"
            if (received + len(piece)) // (8 << 20) > received // (8 << 20):
                time.sleep(0.5)  # a pause every 8 MiB, shorter than the limit
            received += len(piece)
        slow.close()


def test_uploads_beyond_the_large_block_limit_arrive_whole(tmp_path: Path) -> None:
    """With 64 large bodies arriving at once (each holding 4 MiB blocks), the next is received
    in 256 KiB blocks: memory stays bounded, and the blob is exact (`LARGE_MAX` in
    src/front/upload.rs; its accounting has a unit test)."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    with ocistore_server(tmp_path / "root") as server, server.client() as client:
        held = []
        for _ in range(64):
            location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
            held.append(send_head(server, "PATCH", location, 10 * 1024 * 1024, b"x"))
        time.sleep(0.5)  # every held body is being received by now
        location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        r = client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
        assert r.status_code == 202 and answered_by_front(r), r.text
        r = client.put(r.headers["location"], params={"digest": digest_of(data)})
        assert r.status_code == 201, r.text
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(data)}").content == data
        for sock in held:
            sock.close()


@contextlib.contextmanager
def object_pair(
    backend: Backend, tmp: Path, *, redirect: bool = False, apart: bool = False
) -> Iterator[tuple[Server, Server]]:
    """The application alone and the front before another application, on one root directory
    of an object store (or each on its own, ``apart``)."""
    root = f"/front-{uuid.uuid4().hex[:8]}"
    with (
        s3_server(tmp / "app", backend, root + "-app" * apart, redirect=redirect,
                  extra=("--no-native-front",)) as app,
        s3_server(tmp / "front", backend, root, redirect=redirect) as front,
    ):  # fmt: skip
        yield app, front


def test_on_object_storage_the_same_answers_as_the_application(
    backend: Backend, tmp_path: Path
) -> None:
    # Blob GETs streamed from the store (storage.redirect.disable), HEADs, ranges: as on a
    # filesystem, every case the front answers is answered as the application does.
    with object_pair(backend, tmp_path) as (app, front), front.client() as f, app.client() as a:
        for repo, data in [(REPO, BIG), (REPO, SMALL), (REPO, b""), ("front/other", SMALL),
                           *((REPO, blob) for blob in IMAGE.blobs.values())]:  # fmt: skip
            push(f, repo, data)
        r = f.put(f"/v2/{REPO}/manifests/v1", content=IMAGE.manifest,
                  headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        assert r.status_code == 201, r.text
        for method, path, headers, by_front in CASES:
            expected = a.request(method, path, headers=headers)
            got = f.request(method, path, headers=headers)
            # Manifests and tags on object storage are the application's (its descriptor cache
            # saves the round trips the front would make).
            by_front = by_front and "/manifests/" not in path and "/tags/" not in path
            assert answered_by_front(got) == by_front, (method, path, headers)
            assert comparable(got) == comparable(expected), (method, path, headers)


def test_on_object_storage_gets_redirect_to_the_store(backend: Backend, tmp_path: Path) -> None:
    with (
        object_pair(backend, tmp_path, redirect=True) as (app, front),
        front.client() as f,
        app.client() as a,
    ):
        digest = push(f, REPO, BIG)
        for headers in [{}, {"Range": "bytes=10-19"}]:
            expected = a.get(f"/v2/{REPO}/blobs/{digest}", headers=headers)
            got = f.get(f"/v2/{REPO}/blobs/{digest}", headers=headers)
            assert got.status_code == 307 and answered_by_front(got)
            location = got.headers["location"]
            assert location.startswith(backend.endpoint)
            assert {k: v for k, v in comparable(got)[1].items() if k != "location"} == {
                k: v for k, v in comparable(expected)[1].items() if k != "location"
            }
            fetched = httpx.get(location, headers=headers)
            assert fetched.content == (BIG[10:20] if headers else BIG)
        head = f.head(f"/v2/{REPO}/blobs/{digest}")  # a HEAD is answered, not redirected
        assert head.status_code == 200 and head.headers["content-length"] == str(len(BIG))


def pipes_of(pid: int) -> int:
    """How many pipe ends process `pid` holds."""
    ends = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed since listed
            ends += os.readlink(fd).startswith("pipe:")
    return ends


def get_slowly(server: Server, path: str, size: int, while_sending: Callable[[], None]) -> bytes:
    """The body of a GET of `path` by a client with a small receive buffer that stops reading
    after the first piece (so the server is mid-body, waiting) and runs `while_sending`."""
    with socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = slow.recv(65536)
        time.sleep(0.3)  # the server fills what the socket holds, and waits
        while_sending()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.1 206"), head
        while len(body) < size:
            piece = slow.recv(1 << 20)
            if not piece:
                break
            body += piece
        return body


def assert_spliced(server: Server, path: str, data: bytes) -> None:
    """Proxied GETs of 1 MiB or more are spliced into the client's socket through a pipe the
    connection holds while it sends (src/front/splice.rs); smaller ones are not. Exact bytes
    either way, over one kept-alive connection, and after a client that hung up mid-body; no
    pipe is left open after."""
    mib = 1024 * 1024
    pid, idle = server.proc.pid, pipes_of(server.proc.pid)

    def settled() -> int:
        deadline = time.monotonic() + 10
        while pipes_of(pid) != idle and time.monotonic() < deadline:
            time.sleep(0.05)
        return pipes_of(pid)

    def pipe_open() -> None:
        assert pipes_of(pid) == idle + 2  # the pipe, both ends

    with server.client() as client:
        small = client.get(path, headers={"Range": "bytes=5-104"})
        assert (small.status_code, small.content) == (206, data[5:105])
        assert answered_by_front(small) and pipes_of(pid) == idle
        for _ in range(2):
            whole = client.get(path)
            assert (whole.status_code, whole.content) == (200, data)
            span = client.get(path, headers={"Range": f"bytes=7-{7 + 2 * mib}"})
            assert (span.status_code, span.content) == (206, data[7 : 8 + 2 * mib])
            assert answered_by_front(whole) and answered_by_front(span)
    assert settled() == idle
    assert get_slowly(server, path, len(data), pipe_open) == data
    assert settled() == idle
    with socket.create_connection(("127.0.0.1", server.port)) as hung_up:
        hung_up.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert hung_up.recv(65536)
    with server.client() as client:
        assert client.get(path).content == data
    assert settled() == idle


def test_on_object_storage_proxied_gets_are_spliced(backend: Backend, tmp_path: Path) -> None:
    """On a plain-HTTP store (SeaweedFS, Azurite, fake-gcs-server), as `assert_spliced` says."""
    data = os.urandom(8 * 1024 * 1024 + 11)
    with s3_server(tmp_path, backend, f"/splice-{uuid.uuid4().hex[:8]}") as server:
        with server.client() as client:
            path = f"/v2/{REPO}/blobs/{push(client, REPO, data)}"
        assert_spliced(server, path, data)


def test_on_object_storage_uploads_answer_as_the_application(
    backend: Backend, tmp_path: Path
) -> None:
    # PATCH bodies larger than a part (5 MiB): the front writes the multipart upload itself.
    data = os.urandom(11 * 1024 * 1024 + 7)
    with (
        object_pair(backend, tmp_path, apart=True) as (app, front),
        app.client() as a,
        front.client() as f,
    ):
        expected = upload_session(a, "up/same", data)
        got = upload_session(f, "up/same", data)
        assert f.get(f"/v2/up/same/blobs/{digest_of(data)}").content == data
    assert [answer for _, answer in got] == [answer for _, answer in expected]
    assert [by for by, _ in got] == [
        True, True, False, False, False, True, False, True,
        False, False, False, False, False, True, True, False,
    ]  # fmt: skip


# -- the core's Front on its own -------------------------------------------------------------


def write_blob(root: Path, repo: str, data: bytes) -> str:
    digest = digest_of(data)
    hex_ = digest.removeprefix("sha256:")
    v2 = root / "docker/registry/v2"
    blob = v2 / "blobs/sha256" / hex_[:2] / hex_ / "data"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    link = v2 / "repositories" / repo / "_layers/sha256" / hex_ / "link"
    link.parent.mkdir(parents=True)
    link.write_text(digest)
    return digest


def test_front_serves_the_layout_and_reports_an_unreachable_application(tmp_path: Path) -> None:
    digest = write_blob(tmp_path, "a/b", BIG)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    front = _core.Front(
        "127.0.0.1",
        0,
        upstream=not_a_dir / "app.sock",  # fails at once (not a directory): no waiting
        secret="s",
        blob_root=tmp_path,
        headers=[("X-Extra", "1"), ("X-Extra", "2")],
    )
    host, port = front.address
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            r = client.get(f"/v2/a/b/blobs/{digest}")
            assert r.status_code == 200 and r.content == BIG
            assert r.headers.get_list("x-extra") == ["1", "2"]
            assert r.headers["docker-distribution-api-version"] == "registry/2.0"
            r = client.get("/v2/")
            assert r.status_code == 502
            assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
            # The link is what makes a blob visible in a repository.
            (tmp_path / "docker/registry/v2/repositories/a/b/_layers/sha256"
             / digest.removeprefix("sha256:") / "link").write_text(digest_of(b"other"))  # fmt: skip
            assert client.get(f"/v2/a/b/blobs/{digest}").status_code == 502
    finally:
        front.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/v2/", timeout=5)


def test_front_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="cannot listen"):
            _core.Front("127.0.0.1", port, upstream=tmp_path / "s", secret="s")


# -- uploads -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """The application alone and the front before another application, each on its own root."""
    base = tmp_path_factory.mktemp("front-apart")
    with (
        ocistore_server(base / "app", extra=["--no-native-front"]) as app,
        ocistore_server(base / "front") as front,
    ):
        yield app, front


def normalized(
    response: httpx.Response, upload_id: str | None
) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = comparable(response)
    if upload_id:
        headers = {k: v.replace(upload_id, "<id>") for k, v in headers.items()}
        body = body.replace(upload_id.encode(), b"<id>")
    return status, headers, body


def upload_session(client: httpx.Client, repo: str, data: bytes) -> list[tuple[bool, object]]:
    """One of each upload request, plain and otherwise: (answered by the front, answer)."""
    digest = digest_of(data)
    half = len(data) // 2
    answers: list[tuple[bool, object]] = []
    upload_id: str | None = None

    def note(r: httpx.Response) -> httpx.Response:
        answers.append((answered_by_front(r), normalized(r, upload_id)))
        return r

    r = note(client.post(f"/v2/{repo}/blobs/uploads/"))
    upload_id = r.headers["docker-upload-uuid"]
    answers[-1] = (answers[-1][0], normalized(r, upload_id))
    location = r.headers["location"]
    note(client.patch(location, content=data[:half], headers={"Content-Range": f"0-{half - 1}"}))
    note(client.patch(location, content=b"x", headers={"Content-Range": "0-0"}))  # not at the end
    note(client.patch(location, content=b"x", headers={"Content-Range": "nonsense"}))
    note(client.get(location))
    # A digest on a PATCH commits nothing (the application ignores it).
    note(client.patch(f"{location}?digest={digest}", content=data[half:]))
    note(client.put(f"{location}?digest={digest_of(b'something else')}"))  # wrong digest
    note(client.put(f"{location}?digest={digest.replace(':', '%3A')}"))
    note(client.patch(location, content=b"x"))  # committed: gone
    note(client.patch(f"/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000"))
    note(client.patch(f"/v2/{repo}/blobs/uploads/not-an-id", content=b"x"))
    note(client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data))  # one request
    note(client.post(f"/v2/{repo}/blobs/uploads/?mount={digest}&from={repo}"))
    r = note(client.post(f"/v2/{repo}/blobs/uploads"))
    upload_id = r.headers["docker-upload-uuid"]
    answers[-1] = (answers[-1][0], normalized(r, upload_id))
    note(client.put(f"{r.headers['location']}?digest={digest_of(SMALL)}", content=SMALL))
    note(client.delete(r.headers["location"]))
    return answers


def test_uploads_answer_as_the_application(apart: tuple[Server, Server]) -> None:
    app, front = apart
    data = os.urandom(5 * 1024 * 1024 + 7)  # PATCHes larger than the front's 4 MiB block
    with app.client() as a, front.client() as f:
        expected = upload_session(a, "up/same", data)
        got = upload_session(f, "up/same", data)
    assert [answer for _, answer in got] == [answer for _, answer in expected]
    assert not any(by_front for by_front, _ in expected)
    by_front = [by for by, _ in got]
    # POST, PATCH, -, -, -, PATCH, - (wrong digest: committed by the application, which
    # refuses it), PUT, -, -, -, -, -, POST, PUT, -.
    assert by_front == [
        True, True, False, False, False, True, False, True,
        False, False, False, False, False, True, True, False,
    ]  # fmt: skip


def layout_tree(root: Path) -> dict[str, bytes | None]:
    """Every path under the registry's v2 directory: file contents, None for directories."""
    v2 = root / "docker/registry/v2"
    return {
        str(path.relative_to(v2)): None if path.is_dir() else path.read_bytes()
        for path in sorted(v2.rglob("*"))
        if "_ocistore" not in path.parts
    }


def test_pushes_through_the_front_leave_the_applications_layout(
    apart: tuple[Server, Server],
) -> None:
    blobs = [os.urandom(3 * 1024 * 1024), os.urandom(100), b""]
    for server in apart:
        with server.client() as client:
            for data in blobs:
                push(client, "layout/same", data)
            push(client, "layout/other", blobs[0])
    app_tree, front_tree = (layout_tree(server.root) for server in apart)
    repos = {k: v for k, v in app_tree.items() if k.startswith(("repositories/layout", "blobs/"))}
    assert repos and repos == {k: v for k, v in front_tree.items() if k in repos}
    # No upload left behind, in either.
    for tree in (app_tree, front_tree):
        assert not [k for k in tree if k.startswith("repositories/layout") and "/_uploads/" in k]


def manifest_session(client: httpx.Client, repo: str) -> list[tuple[bool, object]]:
    """Manifest PUTs the front stores itself and ones it leaves to the application: (answered by
    the front, answer), each followed by a GET of what it pushed."""
    image = make_image(91)
    referrer = make_image(92, layers=1, subject=image.manifest, artifact_type="application/x")
    for data in {**image.blobs, **referrer.blobs}.values():
        push(client, repo, data)
    answers: list[tuple[bool, object]] = []

    def put(reference: str, payload: bytes, content_type: str | None = OCI_MANIFEST) -> None:
        headers = {} if content_type is None else {"Content-Type": content_type}
        r = client.put(f"/v2/{repo}/manifests/{reference}", content=payload, headers=headers)
        answers.append((answered_by_front(r), comparable(r)))
        if r.status_code == 201:
            got = client.get(
                r.headers["location"], headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
            )
            assert got.content == payload
            answers.append((False, comparable(got)[0]))

    sha512 = "sha512:" + hashlib.sha512(image.manifest).hexdigest()
    doc = json.loads(image.manifest)
    put("v1", image.manifest)  # by tag
    put(image.digest, image.manifest)  # by digest
    put(sha512, image.manifest)  # by a digest in another algorithm
    put("v1", image.manifest, None)  # the media type told by the payload
    put("ref", referrer.manifest)  # with a subject: OCI-Subject
    put("v1", image.manifest[:-1] + b" }")  # other bytes, the same tag moved
    # Left to the application: a tag parameter, a bad tag, a digest that is not the payload's,
    # a missing layer, a foreign layer, an index, a schema refusal, no JSON at all.
    put(f"{image.digest}?tag=t1&tag=t2", image.manifest)
    put("-bad-", image.manifest)
    put(digest_of(b"other"), image.manifest)
    missing = {**doc, "layers": [*doc["layers"], descriptor(LAYER, b"never pushed")]}
    put("missing", json.dumps(missing).encode())
    foreign = {**doc, "layers": [{**doc["layers"][0], "urls": ["https://example.com/l"]}]}
    put("foreign", json.dumps(foreign).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, image.manifest)],
    }
    put("index", json.dumps(index).encode(), OCI_INDEX)
    put("bad", json.dumps({**doc, "schemaVersion": 3}).encode())
    put("bad", b"not json")
    return answers


def answered_alike(
    apart: tuple[Server, Server],
    session: Callable[[httpx.Client, str], list[tuple[bool, object]]],
    repo: str,
) -> list[tuple[bool, object]]:
    """``session`` against a bare application and against a front: the same answers (none of
    the application's given by a front) and the same layout of ``repo`` afterwards. Returns the
    front's answers."""
    app, front = apart
    with app.client() as a, front.client() as f:
        expected = session(a, repo)
        got = session(f, repo)
    assert [answer for _, answer in got] == [answer for _, answer in expected]
    assert not any(by_front for by_front, _ in expected)
    prefix = f"repositories/{repo}/"
    app_tree, front_tree = (layout_tree(server.root) for server in apart)
    stored = {k: v for k, v in app_tree.items() if k.startswith(prefix)}
    assert stored and stored == {k: v for k, v in front_tree.items() if k.startswith(prefix)}
    return got


def test_manifest_puts_answer_as_the_application(apart: tuple[Server, Server]) -> None:
    got = answered_alike(apart, manifest_session, "manifests/same")
    stored_by_front = [by for by, answer in got if isinstance(answer, tuple)]
    assert stored_by_front == [True] * 6 + [False] * 8


def delete_session(client: httpx.Client, repo: str) -> list[tuple[bool, object]]:
    """Tag listings and DELETEs the front answers itself and ones it leaves to the
    application: (answered by the front, answer)."""
    image = make_image(93)
    referrer = make_image(94, layers=1, subject=image.manifest, artifact_type="application/x")
    for data in {**image.blobs, **referrer.blobs}.values():
        push(client, repo, data)
    for tag, payload in (("v1", image.manifest), ("v2", image.manifest), ("r", referrer.manifest)):
        r = client.put(f"/v2/{repo}/manifests/{tag}", content=payload,
                       headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        assert r.status_code == 201
    answers: list[tuple[bool, object]] = []

    def ask(method: str, path: str) -> None:
        r = client.request(method, path)
        answers.append((answered_by_front(r), comparable(r)))

    tags, layer = f"/v2/{repo}/tags/list", digest_of(image.layers[0])
    for query in ("", "?n=2", "?n=2&last=r", "?last=v1", "?n=0", "?n=", "?n=x", "?n=-1"):
        ask("GET", tags + query)
    ask("GET", "/v2/never/pushed/tags/list")
    ask("DELETE", f"/v2/{repo}/blobs/{digest_of(b'never pushed')}")
    ask("DELETE", f"/v2/{repo}/blobs/{layer}")
    ask("DELETE", f"/v2/{repo}/blobs/{layer}")  # gone now
    ask("DELETE", f"/v2/{repo}/blobs/sha256:zz")
    ask("DELETE", f"/v2/{repo}/manifests/v2")  # by tag: the application's
    ask("DELETE", f"/v2/{repo}/manifests/{digest_of(b'never pushed')}")
    ask("GET", f"/v2/{repo}/referrers/{image.digest}")
    ask("DELETE", f"/v2/{repo}/manifests/{referrer.digest}")  # its referrers entry goes too
    ask("GET", f"/v2/{repo}/referrers/{image.digest}")
    ask("DELETE", f"/v2/{repo}/manifests/{image.digest}")  # with the tag v1 on it
    ask("DELETE", f"/v2/{repo}/manifests/{image.digest}")
    ask("GET", tags)
    return answers


def test_deletes_and_tag_listings_answer_as_the_application(
    apart: tuple[Server, Server],
) -> None:
    by_front = [by for by, _ in answered_alike(apart, delete_session, "deletes/same")]
    # Listings but a bad n and an unknown repository; the deletes that find what they delete.
    listings = [True] * 6 + [False] * 3
    blobs = [False, True, False, False]
    manifests = [False, False, False, True, False, True, False, True]
    assert by_front == listings + blobs + manifests


def test_a_body_that_breaks_off_keeps_what_arrived(apart: tuple[Server, Server]) -> None:
    _, front = apart
    data = os.urandom(9 * 1024 * 1024)
    sent = 6 * 1024 * 1024
    with front.client() as client:
        r = client.post("/v2/broken/off/blobs/uploads/")
        location = r.headers["location"]
        host, port = front.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(
                f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
            )
            raw.sendall(data[:sent])
        deadline = time.monotonic() + 10
        while True:  # the front notices the closed connection, then releases the upload
            r = client.get(location)
            if r.headers["range"] == f"0-{sent - 1}" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 204 and r.headers["range"] == f"0-{sent - 1}"
        # The bytes are on disk before the front has closed the upload and let go of it: until
        # then a client resuming is told the upload is in use (416), and tries again.
        while True:
            r = client.patch(location, content=data[sent:], headers={"Content-Range": f"{sent}-"
                                                                     f"{len(data) - 1}"})  # fmt: skip
            if r.status_code != 416 or "in use" not in r.text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 202 and answered_by_front(r)
        r = client.put(f"{location}?digest={digest_of(data)}")
        assert r.status_code == 201 and answered_by_front(r)
        assert client.get(f"/v2/broken/off/blobs/{digest_of(data)}").content == data


def test_an_upload_in_use_is_the_applications_to_refuse(apart: tuple[Server, Server]) -> None:
    import fcntl

    _, front = apart
    with front.client() as client:
        r = client.post("/v2/in/use/blobs/uploads/")
        upload_id = r.headers["docker-upload-uuid"]
        data_file = front.root / "docker/registry/v2/repositories/in/use/_uploads" / upload_id
        with open(data_file / "data", "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            r = client.patch(r.headers["location"], content=b"abc")
        assert r.status_code == 416 and not answered_by_front(r)
        assert "in use" in r.json()["errors"][0]["message"]


def test_read_only_front_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("storage:\n  maintenance:\n    readonly:\n      enabled: true\n")
    extra = ["--config", str(config), "--native-front"]
    with ocistore_server(tmp_path / "root", extra=extra) as server, server.client() as client:
        r = client.post("/v2/read/only/blobs/uploads/")
        assert r.status_code == 405 and not answered_by_front(r)
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_tls_in_the_front(tmp_path: Path) -> None:
    import ssl

    from .auth_material import certificate, ec_key, key_pem, pem, rsa_key

    ca_key = rsa_key()
    ca = certificate(ca_key, "front test CA", ca=True)
    server_key = ec_key()
    server_cert = certificate(server_key, "127.0.0.1", issuer=(ca_key, ca), ip="127.0.0.1")
    (tmp_path / "ca.crt").write_bytes(pem(ca))
    (tmp_path / "server.crt").write_bytes(pem(server_cert))
    (tmp_path / "server.key").write_bytes(key_pem(server_key))
    config = tmp_path / "config.yml"
    config.write_text(
        f"http:\n  tls:\n    certificate: {tmp_path / 'server.crt'}\n"
        f"    key: {tmp_path / 'server.key'}\n    minimumtls: tls1.3\n"
    )
    extra = ["--config", str(config)]
    with (
        ocistore_server(tmp_path / "root", extra=extra, tls_ca=tmp_path / "ca.crt") as server,
        server.client() as client,
    ):
        digest = push(client, "t/l", BIG)
        r = client.get(f"/v2/t/l/blobs/{digest}")
        assert r.status_code == 200 and r.content == BIG and answered_by_front(r)
        r = client.get("/v2/")
        assert r.status_code == 200 and not answered_by_front(r)
        old = ssl.create_default_context(cafile=tmp_path / "ca.crt")
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/v2/", verify=old, timeout=5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https://", "http://") + "/v2/", timeout=5)


def test_an_unusable_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    bad = str(tmp_path / "bad.pem")
    config = Config(root=str(tmp_path / "root"), addr="127.0.0.1:5999", tls_certificate=bad,
                    tls_key=bad)  # fmt: skip
    before = set(Path(tempfile.gettempdir()).glob("ocistore-front-*"))
    with pytest.raises(ConfigError, match=r"http\.tls: .*bad\.pem"):
        serve(config)
    assert set(Path(tempfile.gettempdir()).glob("ocistore-front-*")) <= before


def test_gc_during_pushes_through_the_front(tmp_path: Path) -> None:
    """The GC protocol holds for blobs the front commits (its `commit_linked` against the
    collector in another process): every tag ends complete, and a blob the collector took
    mid-push is refused as the application refuses it, then pushed again."""
    import random
    import threading

    from ocistore import Registry
    from ocistore.storage import OCI_MANIFEST

    from .images import check_tagged_images_complete, collect_while, make_image

    root = tmp_path / "root"
    pushed = 0
    lock = threading.Lock()
    with ocistore_server(root, workers=2) as server:
        registry = Registry(root)

        def blob_pushed(client: httpx.Client, repo: str, data: bytes) -> bool:
            r = client.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 202 and answered_by_front(r)
            r = client.put(f"{r.headers['location']}?digest={digest_of(data)}", content=data)
            assert answered_by_front(r)
            if r.status_code == 404:  # the collector took it between publish and link
                assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
                return False
            assert r.status_code == 201, r.text
            return True

        def pusher(worker: int) -> None:
            nonlocal pushed
            rng = random.Random(worker)
            repo = f"gc/app{worker}"
            pool = [make_image(worker * 100 + k, layers=1, layer_size=512) for k in range(4)]
            deadline = time.monotonic() + 90
            with server.client() as client:
                for i in range(40):
                    image = pool[rng.randrange(len(pool))]
                    for _ in range(50):
                        assert time.monotonic() < deadline, "bounded in time"
                        if not all(blob_pushed(client, repo, b) for b in image.blobs.values()):
                            continue
                        r = client.put(
                            f"/v2/{repo}/manifests/t{i % 4}",
                            content=image.manifest,
                            headers={"Content-Type": OCI_MANIFEST},
                        )
                        if r.status_code == 201:
                            break
                        assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
                    else:
                        raise AssertionError("a push never got through")
                    with lock:
                        pushed += 1

        runs = collect_while(registry, pusher, timeout=120)
    assert pushed == 160 and len(runs) >= 1
    assert check_tagged_images_complete(registry) == 16  # four tags in each of four repos


def test_serve_runs_two_application_workers_by_default(tmp_path: Path) -> None:
    # Manifest and tag writes wait on fsyncs in the application: one worker would leave its
    # clients queued meanwhile (docs/performance.md, "Application workers").
    with ocistore_server(tmp_path / "root", workers=None) as server:
        workers = [
            pid
            for pid in descendants(server.proc.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2, workers
        with server.client() as client:
            assert client.get("/v2/_catalog").status_code == 200
