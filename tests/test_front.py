"""The native front (`ocistore serve --native-front`): for every blob read it answers itself, the
same status, headers and bytes as the application behind it; everything else passed on; its
requests in the application's metrics and access log; nothing a client sends can pose as the
front."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ocistore import _core
from ocistore.server.config import Config, ConfigError
from ocistore.server.serve import serve

from .servers import Server, ocistore_server

REPO = "front/test"
#: Crosses the front's 2 MiB read block twice.
BIG = os.urandom(4 * 1024 * 1024 + 12345)
SMALL = b"small blob behind the front"


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
        ocistore_server(root) as app,
        ocistore_server(root, extra=["--native-front"]) as front,
        front.client() as client,
    ):
        push(client, REPO, BIG)  # through the front: uploads pass through to the application
        push(client, REPO, SMALL)
        push(client, REPO, b"")
        push(client, "front/other", SMALL)
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
    ("GET", "/v2/", {}, False),
    ("GET", f"/v2/{REPO}/manifests/latest", {}, False),
    ("GET", f"/v2/{REPO}/tags/list", {}, False),
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


def test_authentication_is_the_applications(tmp_path: Path) -> None:
    """With auth configured the front answers nothing itself: no blob without credentials."""
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"u:{hashed}\n")
    config = tmp_path / "config.yml"
    config.write_text(f"auth:\n  htpasswd:\n    realm: r\n    path: {tmp_path / 'htpasswd'}\n")
    extra = ["--config", str(config), "--native-front"]
    with ocistore_server(tmp_path / "root", extra=extra) as server, server.client() as client:
        client.auth = httpx.BasicAuth("u", "pw")
        digest = push(client, "a/b", SMALL)
        r = client.get(f"/v2/a/b/blobs/{digest}")
        assert r.status_code == 200 and r.content == SMALL
        assert not answered_by_front(r)
        client.auth = None
        r = client.get(f"/v2/a/b/blobs/{digest}")
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert client.head(f"/v2/a/b/blobs/{digest}").status_code == 401


def test_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with (
        ocistore_server(tmp_path / "root", extra=["--native-front"]) as server,
        server.client() as client,
    ):
        push(client, "a/b", SMALL)
    assert server.proc.returncode == 0, server.log.read_text()


def test_front_refuses_tls() -> None:
    config = Config(native_front=True, tls_certificate="cert.pem", tls_key="key.pem")
    with pytest.raises(ConfigError, match="plain HTTP"):
        serve(config)


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
