"""The OCI Distribution API over HTTP, against `ocistore serve` under granian (one and two
workers) and uvicorn."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocistore.aio import INLINE_WRITE_MAX
from ocistore.server.metrics import Metrics, Observation
from ocistore.storage import OCI_INDEX, OCI_MANIFEST, Registry
from ocistore.storage.driver import FilesystemDriver
from prometheus_client import values as prometheus_values

from .distribution import Client as RawClient
from .images import Image, digest_of, make_image, make_index
from .servers import Server, ocistore_server

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(
    scope="module",
    params=[
        ("granian", 1, "fs"),
        ("granian", 1, "fs-no-front"),
        ("granian", 2, "fs"),
        ("uvicorn", 1, "fs"),
        ("granian", 2, "s3"),
        ("granian", 2, "azure"),
        ("granian", 2, "gcs"),
    ],
    ids=[
        "granian",
        "granian-no-front",
        "granian-2-workers",
        "uvicorn",
        "granian-2-workers-s3",
        "granian-2-workers-azure",
        "granian-2-workers-gcs",
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind, workers, storage = request.param
    base = tmp_path_factory.mktemp("http")
    # On a filesystem the native front is there by default: "fs-no-front" is the application
    # alone (as with TLS).
    extra = ["--no-native-front"] if storage == "fs-no-front" else []
    if storage in ("s3", "azure", "gcs"):
        # Blob GETs proxied (no redirect) so every answer is the registry's own.
        if storage == "s3":
            weed = request.getfixturevalue("seaweedfs")
            section = {"s3": weed.storage_s3(weed.bucket()), "redirect": {"disable": True}}
        elif storage == "gcs":
            gcs = request.getfixturevalue("fakegcs")
            section = {"gcs": gcs.storage_gcs(gcs.bucket()), "redirect": {"disable": True}}
        else:
            emulator = request.getfixturevalue("azurite")
            section = {
                "azure": emulator.storage_azure(emulator.container()),
                "redirect": {"disable": True},
            }
        config = base / "config.yml"
        config.write_text(yaml.safe_dump({"storage": section}))
        extra = ["--config", str(config)]
    with ocistore_server(base / "root", workers=workers, server=kind, extra=extra) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def errors(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/json"
    return [e["code"] for e in response.json()["errors"]]


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = digest_of(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def push_image(client: httpx.Client, name: str, image: Image, tag: str) -> str:
    for data in image.blobs.values():
        push_blob(client, name, data)
    r = client.put(
        f"/v2/{name}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, r.text
    return r.headers["docker-content-digest"]


def test_base(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_monolithic_push_and_ranged_pull(client: httpx.Client) -> None:
    data = random.Random(1).randbytes(100_000)
    digest = push_blob(client, "mono/repo", data)
    head = client.head(f"/v2/mono/repo/blobs/{digest}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["docker-content-digest"] == digest
    get = client.get(f"/v2/mono/repo/blobs/{digest}")
    assert get.content == data and get.headers["etag"] == f'"{digest}"'
    for header, expected, span in [
        ("bytes=0-0", data[:1], f"0-0/{len(data)}"),
        (f"bytes={len(data) - 1}-", data[-1:], f"{len(data) - 1}-{len(data) - 1}/{len(data)}"),
        ("bytes=-10", data[-10:], f"{len(data) - 10}-{len(data) - 1}/{len(data)}"),
        ("bytes=10-99999999", data[10:], f"10-{len(data) - 1}/{len(data)}"),
        ("bytes=500-1499", data[500:1500], f"500-1499/{len(data)}"),
    ]:
        r = client.get(f"/v2/mono/repo/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == expected and r.headers["content-range"] == f"bytes {span}"
    for bad in (f"bytes={len(data)}-", f"bytes={len(data) + 5}-{len(data) + 10}", "bytes=-0"):
        r = client.get(f"/v2/mono/repo/blobs/{digest}", headers={"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(data)}"
    # Not a single byte range: the whole blob, as HTTP allows.
    r = client.get(f"/v2/mono/repo/blobs/{digest}", headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == data
    cached = client.get(f"/v2/mono/repo/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304 and cached.content == b""


def test_unknown_and_invalid_blobs(client: httpx.Client) -> None:
    missing = digest_of(b"missing")
    r = client.get(f"/v2/mono/repo/blobs/{missing}")
    assert r.status_code == 404 and errors(r) == ["BLOB_UNKNOWN"]
    r = client.head(f"/v2/mono/repo/blobs/{missing}")
    assert r.status_code == 404
    r = client.get("/v2/mono/repo/blobs/sha256:nothex")
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    r = client.post(f"/v2/mono/repo/blobs/uploads/?digest={missing}", content=b"other bytes")
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    r = client.get(f"/v2/mono/repo/blobs/{missing}")
    assert r.status_code == 404  # the mismatched body was not stored


def test_monolithic_pushes_verify_and_leave_no_session(
    client: httpx.Client, server: Server
) -> None:
    """Around the size a single request is received whole before it is written: a wrong digest
    stores nothing and leaves no upload session; the right one stores exactly the bytes."""
    for size in (0, 10, INLINE_WRITE_MAX, INLINE_WRITE_MAX + 1, 300_000):
        data = random.Random(size).randbytes(size)
        r = client.post("/v2/mono/left/blobs/uploads/", params={"digest": digest_of(data + b"x")},
                        content=data)  # fmt: skip
        assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"], size
        assert client.head(f"/v2/mono/left/blobs/{digest_of(data)}").status_code == 404
        r = client.post("/v2/mono/left/blobs/uploads/", params={"digest": digest_of(data)},
                        content=data)  # fmt: skip
        assert r.status_code == 201, r.text
        assert client.get(f"/v2/mono/left/blobs/{digest_of(data)}").content == data
    uploads = server.root / "docker/registry/v2/repositories/mono/left/_uploads"
    if uploads.exists():  # filesystem storage (the S3 variant keeps nothing under root)
        assert list(uploads.iterdir()) == []


def test_chunked_upload(client: httpx.Client) -> None:
    data = random.Random(2).randbytes(3 * 1024 * 1024 + 17)
    start = client.post("/v2/chunked/repo/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["location"]
    upload_id = start.headers["docker-upload-uuid"]
    assert location == f"/v2/chunked/repo/blobs/uploads/{upload_id}"
    assert start.headers["range"] == "0-0"
    cuts = [0, 1_000_000, 2_000_000, 3 * 1024 * 1024]
    for a, b in itertools.pairwise(cuts):
        r = client.patch(
            location,
            content=data[a:b],
            headers={"Content-Range": f"{a}-{b - 1}", "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 202, r.text
        assert r.headers["range"] == f"0-{b - 1}"
        assert r.headers["docker-upload-uuid"] == upload_id
        location = r.headers["location"]
    # A gap, an overlap and a re-send of an old chunk all get 416 with the current range.
    for a, b in [(cuts[-1] + 1, cuts[-1] + 10), (5, 20), (0, 999_999)]:
        r = client.patch(location, content=data[a : b + 1], headers={"Content-Range": f"{a}-{b}"})
        assert r.status_code == 416, (a, b)
        assert r.headers["range"] == f"0-{cuts[-1] - 1}"
    r = client.patch(
        location, content=b"xx", headers={"Content-Range": f"{cuts[-1]}-{cuts[-1] + 5}"}
    )
    assert r.status_code == 416  # Content-Range disagrees with the body's length
    status = client.get(location)
    assert status.status_code == 204 and status.headers["range"] == f"0-{cuts[-1] - 1}"
    r = client.put(location, params={"digest": digest_of(b"wrong")}, content=data[cuts[-1] :])
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    # Nothing was lost: the session is still there and can be finished with the right digest.
    status = client.get(location)
    assert status.headers["range"] == f"0-{len(data) - 1}"
    r = client.put(location, params={"digest": digest_of(data)})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v2/chunked/repo/blobs/{digest_of(data)}"
    assert client.get(f"/v2/chunked/repo/blobs/{digest_of(data)}").content == data
    gone = client.get(location)
    assert gone.status_code == 404 and errors(gone) == ["BLOB_UPLOAD_UNKNOWN"]


def test_patch_without_content_range_and_put_with_last_chunk(client: httpx.Client) -> None:
    data = random.Random(3).randbytes(2_000_000)
    location = client.post("/v2/stream/repo/blobs/uploads/").headers["location"]
    r = client.patch(location, content=iter([data[:700_000], data[700_000:1_500_000]]))
    assert r.status_code == 202 and r.headers["range"] == "0-1499999"
    r = client.put(location + f"?digest={digest_of(data)}", content=data[1_500_000:])
    assert r.status_code == 201, r.text


def test_put_without_digest_and_cancel(client: httpx.Client) -> None:
    location = client.post("/v2/cancel/repo/blobs/uploads/").headers["location"]
    r = client.put(location, content=b"abc")
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    assert client.delete(location).status_code == 204
    r = client.delete(location)
    assert r.status_code == 404 and errors(r) == ["BLOB_UPLOAD_UNKNOWN"]
    for bad in ("not-a-uuid", "..%2F..%2Fetc", "00000000-0000-0000-0000-000000000000"):
        r = client.patch(f"/v2/cancel/repo/blobs/uploads/{bad}", content=b"x")
        assert r.status_code == 404, bad
        assert errors(r) in (["BLOB_UPLOAD_UNKNOWN"], ["NAME_UNKNOWN"]), bad


def test_cross_repository_mount(client: httpx.Client) -> None:
    digest = push_blob(client, "mount/source", b"mountable layer")
    r = client.post(
        "/v2/mount/target/blobs/uploads/", params={"mount": digest, "from": "mount/source"}
    )
    assert r.status_code == 201 and r.headers["location"] == f"/v2/mount/target/blobs/{digest}"
    assert client.get(f"/v2/mount/target/blobs/{digest}").content == b"mountable layer"
    r = client.post("/v2/mount/third/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 201  # without `from`: any repository's copy
    missing = digest_of(b"not there")
    r = client.post(
        "/v2/mount/fourth/blobs/uploads/", params={"mount": missing, "from": "mount/source"}
    )
    assert r.status_code == 202 and "docker-upload-uuid" in r.headers


def test_a_sha512_blob_mounts_with_and_without_from(client: httpx.Client) -> None:
    # Stored under its sha256 (distribution's layout): a mount by the sha512 digest finds it
    # through the source repository's alias link, or, naming no repository, through ocistore's
    # global alias.
    data = b"a sha512 layer to mount"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    r = client.post("/v2/mount512/source/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201 and r.headers["docker-content-digest"] == digest
    for target, params in (
        ("mount512/from", {"mount": digest, "from": "mount512/source"}),
        ("mount512/anywhere", {"mount": digest}),
    ):
        r = client.post(f"/v2/{target}/blobs/uploads/", params=params)
        assert r.status_code == 201, (target, r.status_code)
        assert r.headers["docker-content-digest"] == digest
        got = client.get(f"/v2/{target}/blobs/{digest}")
        assert got.content == data and got.headers["docker-content-digest"] == digest
    other = "sha512:" + hashlib.sha512(b"never pushed").hexdigest()
    r = client.post("/v2/mount512/none/blobs/uploads/", params={"mount": other})
    assert r.status_code == 202


def test_manifests(client: httpx.Client) -> None:
    image = make_image(10, annotations={"a": "b"})
    digest = push_image(client, "man/app", image, "v1")
    assert digest == image.digest
    for ref in ("v1", digest):
        r = client.get(f"/v2/man/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.manifest
        assert r.headers["content-type"] == OCI_MANIFEST
        assert r.headers["docker-content-digest"] == digest
        head = client.head(f"/v2/man/app/manifests/{ref}")
        assert head.status_code == 200 and head.headers["content-length"] == str(
            len(image.manifest)
        )
    r = client.get("/v2/man/app/manifests/v1", headers={"Accept": DOCKER_V2})
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    r = client.get("/v2/man/app/manifests/v1", headers={"Accept": f"{DOCKER_V2}, */*"})
    assert r.status_code == 200
    for missing in ("nope", digest_of(b"nope"), ".INVALID"):
        assert client.get(f"/v2/man/app/manifests/{missing}").status_code == 404


def test_manifest_errors(client: httpx.Client) -> None:
    image = make_image(11)
    r = client.put(
        "/v2/man/bad/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400
    assert set(errors(r)) == {"MANIFEST_BLOB_UNKNOWN"} and len(errors(r)) == len(image.blobs)
    for data in image.blobs.values():
        push_blob(client, "man/bad", data)
    r = client.put(
        f"/v2/man/bad/manifests/{digest_of(b'other')}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    r = client.put(
        "/v2/man/bad/manifests/v1", content=b"{not json", headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400 and errors(r) == ["MANIFEST_INVALID"]
    huge = b'{"schemaVersion": 2, "annotations": {"x": "' + b"a" * (4 * 1024 * 1024) + b'"}}'
    r = client.put("/v2/man/bad/manifests/v1", content=huge, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413
    r = client.put(
        "/v2/man/bad/manifests/v1",
        content=b'{"schemaVersion": 1}',
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
    )
    assert r.status_code == 400 and errors(r) == ["MANIFEST_INVALID"]
    r = client.put(
        "/v2/man/bad/manifests/-bad-tag",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400
    r = client.put(
        "/v2/man/bad/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201


def test_index_tags_pagination_and_deletes(client: httpx.Client) -> None:
    amd, arm = make_image(12, arch="amd64"), make_image(13, arch="arm64")
    push_image(client, "multi/app", amd, "amd64")
    push_image(client, "multi/app", arm, "arm64")
    index = make_index([(amd, "amd64"), (arm, "arm64")])
    r = client.put(
        "/v2/multi/app/manifests/latest", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert r.status_code == 201
    for tag in ("a1", "a2", "a3"):
        assert client.put(
            f"/v2/multi/app/manifests/{tag}", content=amd.manifest, headers={"Content-Type": OCI_MANIFEST}
        ).status_code == 201  # fmt: skip
    all_tags = ["a1", "a2", "a3", "amd64", "arm64", "latest"]
    assert client.get("/v2/multi/app/tags/list").json() == {"name": "multi/app", "tags": all_tags}
    page = client.get("/v2/multi/app/tags/list", params={"n": 2})
    assert page.json()["tags"] == ["a1", "a2"]
    assert page.headers["link"] == '</v2/multi/app/tags/list?last=a2&n=2>; rel="next"'
    page = client.get("/v2/multi/app/tags/list", params={"n": 2, "last": "a3"})
    assert page.json()["tags"] == ["amd64", "arm64"]
    page = client.get("/v2/multi/app/tags/list", params={"n": 10, "last": "arm64"})
    assert page.json()["tags"] == ["latest"] and "link" not in page.headers
    assert client.get("/v2/multi/app/tags/list", params={"n": "x"}).status_code == 400
    r = client.get("/v2/multi/nothing/tags/list")
    assert r.status_code == 404 and errors(r) == ["NAME_UNKNOWN"]
    # Deleting a tag keeps the manifest; deleting the manifest removes its tags.
    assert client.delete("/v2/multi/app/manifests/a1").status_code == 202
    assert client.get(f"/v2/multi/app/manifests/{amd.digest}").status_code == 200
    assert client.delete(f"/v2/multi/app/manifests/{amd.digest}").status_code == 202
    assert client.get("/v2/multi/app/tags/list").json()["tags"] == ["arm64", "latest"]
    assert client.get(f"/v2/multi/app/manifests/{amd.digest}").status_code == 404
    layer = digest_of(arm.layers[0])
    assert client.delete(f"/v2/multi/app/blobs/{layer}").status_code == 202
    assert client.get(f"/v2/multi/app/blobs/{layer}").status_code == 404


def test_catalog(client: httpx.Client) -> None:
    for name in ("cat/a", "cat/b", "cat/c"):
        push_image(client, name, make_image(14), "v1")
    names = client.get("/v2/_catalog").json()["repositories"]
    assert {"cat/a", "cat/b", "cat/c"} <= set(names) and names == sorted(
        names, key=lambda n: n.replace("/", "\0")
    )
    page = client.get("/v2/_catalog", params={"n": 1, "last": "cat/a"})
    assert page.json() == {"repositories": ["cat/b"]}
    assert page.headers["link"] == '</v2/_catalog?last=cat%2Fb&n=1>; rel="next"'


def follow_links(client: httpx.Client, url: str, key: str) -> tuple[list[str], int]:
    """Every page a client following ``Link`` gets, and how many requests that took."""
    seen: list[str] = []
    for requests in itertools.count(1):
        page = client.get(url)
        assert page.status_code == 200
        seen += page.json()[key]
        link = page.headers.get("link")
        if link is None:
            return seen, requests
        assert requests < 20, f"a Link loop: {link}"
        url = link.split(">", 1)[0].removeprefix("<")
    raise AssertionError


def test_a_size_past_int64_is_an_invalid_manifest(client: httpx.Client) -> None:
    image = make_image(18)
    for data in image.blobs.values():
        push_blob(client, "huge/size", data)
    document = json.loads(image.manifest)
    document["layers"][0]["size"] = 2**64
    payload = json.dumps(document).encode()
    r = client.put(
        "/v2/huge/size/manifests/v1", content=payload, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400 and errors(r) == ["MANIFEST_INVALID"]
    assert client.get("/v2/huge/size/manifests/v1").status_code == 404


def test_a_page_of_none_is_empty_and_links_nowhere(client: httpx.Client) -> None:
    for name in ("zero/a", "zero/b"):
        push_image(client, name, make_image(14), "v1")
    push_image(client, "zero/a", make_image(15), "v2")
    for url, key in (("/v2/_catalog", "repositories"), ("/v2/zero/a/tags/list", "tags")):
        page = client.get(url, params={"n": 0})
        assert page.status_code == 200 and page.json()[key] == [] and "link" not in page.headers
    # Pages of one, followed by Link, end, and give every name once.
    tags, requests = follow_links(client, "/v2/zero/a/tags/list?n=1", "tags")
    assert (tags, requests) == (["v1", "v2"], 2)
    names, _ = follow_links(client, "/v2/_catalog?n=1", "repositories")
    assert {"zero/a", "zero/b"} <= set(names) and len(names) == len(set(names))


def test_referrers(client: httpx.Client) -> None:
    subject = make_image(15)
    subject_digest = push_image(client, "ref/app", subject, "v1")
    sig = make_image(16, subject=subject.manifest, artifact_type="application/x.sig")
    sbom = make_image(17, subject=subject.manifest, artifact_type="application/x.sbom")
    for artifact in (sig, sbom):
        for data in artifact.blobs.values():
            push_blob(client, "ref/app", data)
        r = client.put(
            f"/v2/ref/app/manifests/{artifact.digest}",
            content=artifact.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201 and r.headers["oci-subject"] == subject_digest
    r = client.get(f"/v2/ref/app/referrers/{subject_digest}")
    assert r.status_code == 200 and r.headers["content-type"] == OCI_INDEX
    assert "oci-filters-applied" not in r.headers
    listed = {m["digest"]: m for m in r.json()["manifests"]}
    assert set(listed) == {sig.digest, sbom.digest}
    assert listed[sig.digest]["artifactType"] == "application/x.sig"
    r = client.get(
        f"/v2/ref/app/referrers/{subject_digest}", params={"artifactType": "application/x.sbom"}
    )
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom.digest]
    client.delete(f"/v2/ref/app/manifests/{sbom.digest}")
    r = client.get(f"/v2/ref/app/referrers/{subject_digest}")
    assert [m["digest"] for m in r.json()["manifests"]] == [sig.digest]
    empty = client.get(f"/v2/ref/app/referrers/{digest_of(b'none')}")
    assert empty.status_code == 200 and empty.json()["manifests"] == []
    assert client.get("/v2/ref/app/referrers/sha256:bad").status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/UPPER/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/a/../b/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/a%2F..%2F..%2Fb/tags/list", 400, "NAME_INVALID"),
        ("POST", "/v2/../../etc/blobs/uploads/", 400, "NAME_INVALID"),
        ("GET", "/v2/ok/blobs/sha256:..%2F..%2Fetc", 400, "DIGEST_INVALID"),
        ("PUT", "/v2/ok/blobs/uploads/", 405, "UNSUPPORTED"),
        ("POST", "/v2/ok/manifests/v1", 405, "UNSUPPORTED"),
        ("GET", "/v3/", 404, "NAME_UNKNOWN"),
    ],
)
def test_hostile_paths(server: Server, method: str, path: str, status: int, code: str) -> None:
    # http.client sends the path as written (httpx would resolve the dot segments first).
    r = RawClient(server.port).request(method, path)
    assert r.status == status, r
    assert [e["code"] for e in json.loads(r.body)["errors"]] == [code]


def test_metrics(client: httpx.Client) -> None:
    client.get("/v2/")
    text = client.get("/metrics").text
    assert 'ocistore_http_requests_total{method="GET",route="base",status="200"}' in text
    assert "ocistore_http_request_duration_seconds_bucket" in text
    assert "ocistore_uploads_in_progress" in text


_observations = st.lists(
    st.tuples(
        st.sampled_from(["blob", "manifest", "upload"]),
        st.sampled_from(["GET", "HEAD", "PUT"]),
        st.sampled_from([200, 201, 206, 404]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
        st.integers(min_value=0, max_value=1 << 40),
        st.integers(min_value=0, max_value=1 << 40),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(observations=_observations)
def test_a_batch_of_observations_counts_as_the_same_requests_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, observations: list[Observation]
) -> None:
    """The front's batches are grouped before they reach the counters; the exposition must be
    the one of the same requests observed one by one."""
    # Each instance counts in its own memory: a server started in this process earlier may
    # have switched prometheus_client to the multiprocess files, which two instances share.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(prometheus_values, "ValueClass", prometheus_values.MutexValue)
    registry = Registry(FilesystemDriver(str(tmp_path / "root")))
    one_by_one, batched = Metrics(registry), Metrics(registry)
    for observation in observations:
        one_by_one.observe(*observation)
    batched.observe_many(observations)

    def exposition(metrics: Metrics) -> list[str]:
        lines = metrics.render()[0].decode().splitlines()
        # Creation times differ; the order of label sets within a metric is not meaningful.
        return sorted(line for line in lines if "_created" not in line)

    assert exposition(batched) == exposition(one_by_one)


def test_large_streamed_upload(client: httpx.Client, server: Server) -> None:
    block = hashlib.sha512(b"seed").digest() * 16384  # 1 MiB
    total = 96
    digest = hashlib.sha256()
    for _ in range(total):
        digest.update(block)
    location = client.post("/v2/big/blob/blobs/uploads/").headers["location"]
    r = client.patch(location, content=(block for _ in range(total)))
    assert r.status_code == 202 and r.headers["range"] == f"0-{total * len(block) - 1}"
    r = client.put(location, params={"digest": "sha256:" + digest.hexdigest()})
    assert r.status_code == 201
    got = hashlib.sha256()
    with client.stream("GET", f"/v2/big/blob/blobs/sha256:{digest.hexdigest()}") as response:
        for chunk in response.iter_bytes():
            got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()


def test_deletes_disabled_and_sessions_survive_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = random.Random(4).randbytes(1_000_000)
    with ocistore_server(root, delete=False) as s, s.client() as c:
        digest = push_blob(c, "keep/app", b"keep me")
        r = c.delete(f"/v2/keep/app/blobs/{digest}")
        assert r.status_code == 405 and errors(r) == ["UNSUPPORTED"]
        location = c.post("/v2/keep/app/blobs/uploads/").headers["location"]
        assert c.patch(location, content=data[:400_000]).status_code == 202
    with ocistore_server(root, delete=False) as s, s.client() as c:
        assert c.get(location).headers["range"] == "0-399999"
        r = c.patch(
            location, content=data[400_000:], headers={"Content-Range": f"400000-{len(data) - 1}"}
        )
        assert r.status_code == 202
        assert c.put(location, params={"digest": digest_of(data)}).status_code == 201
        assert c.get(f"/v2/keep/app/blobs/{digest_of(data)}").content == data


def test_config_errors_are_reported_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.yml"
    for text, message in [
        ("storage:\n  filesystem:\n    rootdir: /x\n", "storage.filesystem.rootdir"),
        ("http:\n  addr: nowhere\n", "http.addr"),
        ("http:\n  bodyidletimeout: never\n", "http.bodyidletimeout"),
        ("storage:\n  delete:\n    enabled: maybe\n", "storage.delete.enabled"),
        ("storage:\n  maintenance:\n    uploadpurging:\n      age: soon\n", "age"),
        ("auth:\n  htpasswd: {}\n", "auth"),
        ("storage:\n  s3:\n    region: x\n", "storage.s3.bucket is required"),
        ("storage:\n  s3:\n    bucket: b\n  filesystem:\n    rootdirectory: /x\n", "one of"),
        ("storage:\n  azure:\n    accountname: a\n    container: c\n", "azure.accountkey"),
        (
            "storage:\n  azure:\n    accountname: a\n    accountkey: k\n    container: c\n"
            "    chunksize: 1\n",
            "storage.azure.chunksize",
        ),
        (
            "storage:\n  azure:\n    accountname: a\n    accountkey: k\n    container: c\n"
            "    serviceurl: ftp://x\n",
            "serviceurl",
        ),
        ("storage:\n  s3:\n    bucket: b\n    chunksize: 1024\n", "storage.s3.chunksize"),
        ("storage:\n  s3:\n    bucket: b\n    v4auth: false\n", "signature version 4"),
        ("storage:\n  s3:\n    bucket: b\n    encrypt: true\n", "storage.s3.encrypt"),
        ("version: 0.2\n", "version"),
    ]:
        config.write_text(text)
        done = subprocess.run(
            [sys.executable, "-m", "ocistore.cli", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, text
        assert "configuration error" in done.stderr and message in done.stderr, done.stderr


def test_config_file_with_flag_override(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'from-config'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n"
        "http:\n  addr: 127.0.0.1:1\n  headers:\n    X-Registry: [ocistore]\n"
    )
    root = tmp_path / "flag-root"
    with ocistore_server(root, extra=["--config", str(config)]) as s, s.client() as c:
        r = c.get("/v2/")
        assert r.headers["x-registry"] == "ocistore"
        digest = push_blob(c, "cfg/app", b"x")
        assert (root / "docker/registry/v2/blobs/sha256" / digest[7:9]).is_dir()
        assert not (tmp_path / "from-config").exists()
        # Upload purging runs in the background with the configured age.
        location = c.post("/v2/cfg/app/blobs/uploads/").headers["location"]
        deadline = __import__("time").monotonic() + 20
        while c.get(location).status_code != 404:
            assert __import__("time").monotonic() < deadline, "upload was never purged"
            __import__("time").sleep(0.2)
        assert (
            c.delete(f"/v2/cfg/app/blobs/{digest}").status_code == 202
        )  # delete enabled by config


def test_hostile_json_bodies_are_spec_errors(client: httpx.Client) -> None:
    for body in (
        b"",
        b"null",
        b"[]",
        b'{"schemaVersion": 2, "layers": "x", "config": {}}',
        b"\xff" * 10,
    ):
        r = client.put(
            "/v2/hostile/app/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 400 and errors(r) == ["MANIFEST_INVALID"], body
    assert json.loads(client.get("/v2/").content) == {}


@pytest.mark.parametrize("drain", ["10s", "1s"], ids=["drained", "cut-off"])
def test_shutdown_mid_upload_leaves_it_resumable(tmp_path: Path, drain: str) -> None:
    """SIGTERM while a PATCH is streaming. With time to drain, the request completes; with too
    little, the worker is stopped mid-body. Either way what reached the server is kept, and the
    session continues after a restart from the Range the server reports."""
    import threading
    import time

    root = tmp_path / "root"
    config = tmp_path / "config.yml"
    config.write_text(f"http:\n  draintimeout: {drain}\n")
    data = random.Random(5).randbytes(8 * 1024 * 1024)
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for i in range(0, len(data), 256 * 1024):
            if i >= 3 * 1024 * 1024:
                sent.set()
                time.sleep(0.2)
            yield data[i : i + 256 * 1024]

    with ocistore_server(root, extra=["--config", str(config)]) as s, s.client() as c:
        location = c.post("/v2/shut/down/blobs/uploads/").headers["location"]

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):
                c.patch(location, content=slow_body())

        worker = threading.Thread(target=upload)
        worker.start()
        assert sent.wait(30)
        from .servers import stop

        stop(s.proc)  # SIGTERM, waits for the server to exit
        worker.join(60)
    with ocistore_server(root) as s, s.client() as c:
        status = c.get(location)
        assert status.status_code == 204
        received = int(status.headers["range"].split("-")[1]) + 1
        assert 3 * 1024 * 1024 <= received <= len(data)
        if drain == "10s":
            assert received == len(data)
        else:
            assert received < len(data)
            r = c.patch(
                location,
                content=data[received:],
                headers={"Content-Range": f"{received}-{len(data) - 1}"},
            )
            assert r.status_code == 202, r.text
        assert c.put(location, params={"digest": digest_of(data)}).status_code == 201
        assert c.get(f"/v2/shut/down/blobs/{digest_of(data)}").content == data


def sha512_of(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_a_manifest_pushed_by_sha512_lives_under_that_digest(client: httpx.Client) -> None:
    # distribution-spec after v1.1: content in another algorithm end to end, the canonical
    # sha256 only where the client gave no digest.
    child = make_image(30)
    for data in child.blobs.values():
        push_blob(client, "alg/five", data)
    child_digest = sha512_of(child.manifest)
    r = client.put(
        f"/v2/alg/five/manifests/{child_digest}",
        content=child.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201 and r.headers["docker-content-digest"] == child_digest
    for method in ("GET", "HEAD"):
        got = client.request(method, f"/v2/alg/five/manifests/{child_digest}")
        assert got.status_code == 200 and got.headers["docker-content-digest"] == child_digest
    assert client.get(f"/v2/alg/five/manifests/{child_digest}").content == child.manifest
    # Not under its sha256: nobody pushed that digest.
    assert client.get(f"/v2/alg/five/manifests/{child.digest}").status_code == 404
    # An index naming the sha512 child, itself pushed by sha512, with two tags at once.
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": child_digest, "size": len(child.manifest)}
            ],
        }
    ).encode()
    index_digest = sha512_of(index)
    r = client.put(
        f"/v2/alg/five/manifests/{index_digest}?tag=one&tag=two",
        content=index,
        headers={"Content-Type": OCI_INDEX},
    )
    assert r.status_code == 201, r.text
    assert r.headers["oci-tag"] == "one, two"
    got = client.get("/v2/alg/five/manifests/two")
    assert got.headers["docker-content-digest"] == index_digest and got.content == index
    assert client.get("/v2/alg/five/tags/list").json()["tags"] == ["one", "two"]
    # A referrer pushed by sha512 is listed under that digest.
    sig = make_image(31, subject=child.manifest, artifact_type="application/x.sig")
    for data in sig.blobs.values():
        push_blob(client, "alg/five", data)
    sig_body = json.loads(sig.manifest)
    sig_body["subject"]["digest"] = child_digest
    sig_manifest = json.dumps(sig_body).encode()
    r = client.put(
        f"/v2/alg/five/manifests/{sha512_of(sig_manifest)}",
        content=sig_manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201 and r.headers["oci-subject"] == child_digest
    listed = client.get(f"/v2/alg/five/referrers/{child_digest}").json()["manifests"]
    assert [d["digest"] for d in listed] == [sha512_of(sig_manifest)]
    # A wrong sha512 is refused; deleting by the sha512 digest removes it and its tags.
    r = client.put(
        f"/v2/alg/five/manifests/sha512:{'0' * 128}",
        content=index,
        headers={"Content-Type": OCI_INDEX},
    )
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
    assert client.delete(f"/v2/alg/five/manifests/{index_digest}").status_code == 202
    assert client.get(f"/v2/alg/five/manifests/{index_digest}").status_code == 404
    assert client.get("/v2/alg/five/manifests/one").status_code == 404


def test_tags_on_a_push_are_set_together_or_not_at_all(client: httpx.Client) -> None:
    image = make_image(32)
    for data in image.blobs.values():
        push_blob(client, "many/tags", data)
    bad = client.put(
        f"/v2/many/tags/manifests/{image.digest}?tag=good&tag=-bad",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert bad.status_code == 400 and errors(bad) == ["MANIFEST_INVALID"]
    assert client.get(f"/v2/many/tags/manifests/{image.digest}").status_code == 404
    assert client.get("/v2/many/tags/manifests/good").status_code == 404
    tags = [f"t{i}" for i in range(12)]
    query = "&".join(f"tag={t}" for t in tags)
    r = client.put(
        f"/v2/many/tags/manifests/{image.digest}?{query}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201 and r.headers["oci-tag"] == ", ".join(tags)
    assert sorted(client.get("/v2/many/tags/tags/list").json()["tags"]) == sorted(tags)


@pytest.mark.parametrize("algorithm", ["sha512", "blake3"])
def test_an_upload_streams_the_algorithm_it_asks_for(client: httpx.Client, algorithm: str) -> None:
    import blake3

    data = random.Random(33).randbytes(3_000_000)
    hexdigest = (
        hashlib.sha512(data).hexdigest()
        if algorithm == "sha512"
        else blake3.blake3(data).hexdigest()
    )
    digest = f"{algorithm}:{hexdigest}"
    r = client.post("/v2/alg/up/blobs/uploads/", params={"digest-algorithm": algorithm})
    assert r.status_code == 202
    location = r.headers["location"]
    half = len(data) // 2
    r = client.patch(location, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
    assert r.status_code == 202
    r = client.patch(
        r.headers["location"],
        content=data[half:],
        headers={"Content-Range": f"{half}-{len(data) - 1}"},
    )
    assert r.status_code == 202
    r = client.put(r.headers["location"], params={"digest": digest})
    assert r.status_code == 201 and r.headers["docker-content-digest"] == digest
    got = client.get(f"/v2/alg/up/blobs/{digest}")
    assert got.content == data and got.headers["docker-content-digest"] == digest
    # A single-request upload by that digest, and an algorithm the registry does not have.
    small = random.Random(34).randbytes(1000)
    small_digest = f"{algorithm}:" + (
        hashlib.sha512(small).hexdigest()
        if algorithm == "sha512"
        else blake3.blake3(small).hexdigest()
    )
    r = client.post("/v2/alg/up/blobs/uploads/", params={"digest": small_digest}, content=small)
    assert r.status_code == 201 and client.get(f"/v2/alg/up/blobs/{small_digest}").content == small
    r = client.post("/v2/alg/up/blobs/uploads/", params={"digest-algorithm": "md5"})
    assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"]
