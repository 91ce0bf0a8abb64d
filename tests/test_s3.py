"""`ocistore serve` on S3-compatible object storage (SeaweedFS): distribution's key layout, two
instances sharing a bucket and continuing each other's uploads, a crash mid-upload, presigned
redirects, skopeo, and the tools that need a filesystem saying so."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ocistore import Registry
from ocistore.storage import OCI_MANIFEST
from ocistore.storage.fsck import fsck

from .distribution import reference_registry
from .images import digest_of, make_image
from .object_stores import Backend, backend_config, s3_backend, s3_server
from .seaweedfs import SeaweedFS
from .test_clients import Layout, blobs_of, image_manifest, skopeo
from .test_http import push_image

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.bucket()


def test_key_layout_is_distributions(seaweedfs: SeaweedFS, bucket: str, tmp_path: Path) -> None:
    image = make_image(40, layers=2)
    with (
        s3_server(tmp_path, s3_backend(seaweedfs, bucket), "/layout") as server,
        server.client() as client,
    ):
        digest = push_image(client, "team/app", image, "v1")
    keys = seaweedfs.list_keys(bucket, "layout/")
    v2 = "layout/docker/registry/v2"
    expected = {f"{v2}/blobs/sha256/{d[7:9]}/{d[7:]}/data" for d in [*image.blobs, digest]}
    expected |= {f"{v2}/repositories/team/app/_layers/sha256/{d[7:]}/link" for d in image.blobs}
    expected |= {
        f"{v2}/repositories/team/app/_manifests/revisions/sha256/{digest[7:]}/link",
        f"{v2}/repositories/team/app/_manifests/tags/v1/current/link",
        f"{v2}/repositories/team/app/_manifests/tags/v1/index/sha256/{digest[7:]}/link",
    }
    # Committed uploads leave nothing behind but the marks of what the push referenced, the
    # garbage collector's (ocistore's own, where distribution never looks).
    marks = f"{v2}/_ocistore/gc/marks/"
    assert set(keys) - {k for k in keys if k.startswith(marks)} == expected
    referenced = {k for k in expected if k.endswith("/data") or "/revisions/" in k}
    assert {marks + k[len(v2) + 1 :] for k in referenced} == {
        k for k in keys if k.startswith(marks)
    }
    blob = next(iter(image.blobs))
    link = f"{v2}/repositories/team/app/_layers/sha256/{blob[7:]}/link"
    assert seaweedfs.get_object(bucket, link) == blob.encode()
    data = f"{v2}/blobs/sha256/{blob[7:9]}/{blob[7:]}/data"
    assert seaweedfs.get_object(bucket, data) == image.blobs[blob]


def test_two_instances_share_a_bucket_and_continue_uploads(
    backend: Backend, tmp_path: Path
) -> None:
    data = random.Random(41).randbytes(13 * MIB + 12345)
    with (
        s3_server(tmp_path / "a", backend, "/shared") as a,
        s3_server(tmp_path / "b", backend, "/shared") as b,
        a.client() as ca,
        b.client() as cb,
    ):
        location = ca.post("/v2/shared/app/blobs/uploads/").headers["location"]
        first = 7 * MIB + 3
        r = ca.patch(location, content=data[:first], headers={"Content-Range": f"0-{first - 1}"})
        assert r.status_code == 202, r.text
        # The other instance knows the session and where it stands.
        status = cb.get(location)
        assert status.status_code == 204 and status.headers["range"] == f"0-{first - 1}"
        # A chunk that does not continue the upload is refused there too.
        assert cb.patch(location, content=b"x", headers={"Content-Range": "0-0"}).status_code == 416
        r = cb.patch(
            location, content=data[first:], headers={"Content-Range": f"{first}-{len(data) - 1}"}
        )
        assert r.status_code == 202, r.text
        r = ca.put(location, params={"digest": digest_of(data)})
        assert r.status_code == 201, r.text
        for client in (ca, cb):
            assert client.get(f"/v2/shared/app/blobs/{digest_of(data)}").content == data
            r = client.get(
                f"/v2/shared/app/blobs/{digest_of(data)}", headers={"Range": "bytes=5-10"}
            )
            assert r.status_code == 206 and r.content == data[5:11]
        image = make_image(42)
        digest = push_image(cb, "shared/app", image, "v1")
        assert ca.get("/v2/shared/app/tags/list").json()["tags"] == ["v1"]
        assert ca.get(f"/v2/shared/app/manifests/{digest}").content == image.manifest
        assert "shared/app" in ca.get("/v2/_catalog").json()["repositories"]
        # A wrong digest leaves the session resumable on either instance.
        location = ca.post("/v2/shared/app/blobs/uploads/").headers["location"]
        assert ca.patch(location, content=b"abc").status_code == 202
        r = cb.put(location, params={"digest": digest_of(b"abd")})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert cb.get(location).headers["range"] == "0-2"
        assert cb.delete(location).status_code == 204
        assert ca.get(location).status_code == 404


def test_a_killed_server_mid_upload_resumes(backend: Backend, tmp_path: Path) -> None:
    data = random.Random(43).randbytes(24 * MIB)
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for i in range(0, len(data), 512 * 1024):
            if i >= 12 * MIB:
                sent.set()
                time.sleep(0.1)
            yield data[i : i + 512 * 1024]

    with s3_server(tmp_path / "one", backend, "/crash") as server, server.client() as c:
        location = c.post("/v2/crash/app/blobs/uploads/").headers["location"]
        first = 6 * MIB
        assert c.patch(location, content=data[:first]).status_code == 202

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):
                c.patch(location, content=slow_body())

        worker = threading.Thread(target=upload)
        worker.start()
        assert sent.wait(60)
        import os

        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        worker.join(60)
    with s3_server(tmp_path / "two", backend, "/crash") as server, server.client() as c:
        status = c.get(location)
        assert status.status_code == 204
        received = int(status.headers["range"].split("-")[1]) + 1
        # The PATCH cut off by the kill never checkpointed: the session stands where the last
        # completed request left it.
        assert received == first
        r = c.patch(location, content=data[received:],
                    headers={"Content-Range": f"{received}-{len(data) - 1}"})  # fmt: skip
        assert r.status_code == 202, r.text
        assert c.put(location, params={"digest": digest_of(data)}).status_code == 201
        assert c.get(f"/v2/crash/app/blobs/{digest_of(data)}").content == data


def test_blob_gets_redirect_to_presigned_urls(backend: Backend, tmp_path: Path) -> None:
    data = random.Random(44).randbytes(3 * MIB)
    digest = digest_of(data)
    with (
        s3_server(tmp_path, backend, "/redirect", redirect=True) as server,
        server.client() as client,
    ):
        r = client.post("/v2/r/app/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201
        r = client.get(f"/v2/r/app/blobs/{digest}")
        assert r.status_code == 307
        assert r.headers["location"].startswith(backend.endpoint)
        assert r.headers["docker-content-digest"] == digest
        assert httpx.get(r.headers["location"]).content == data
        ranged = httpx.get(r.headers["location"], headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == data[100:200]
        # HEAD answers directly; a blob the repository does not link is not redirected.
        head = client.head(f"/v2/r/app/blobs/{digest}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        assert client.get(f"/v2/r/other/blobs/{digest}").status_code == 404
        with httpx.Client(base_url=server.url, follow_redirects=True) as following:
            assert following.get(f"/v2/r/app/blobs/{digest}").content == data


def test_skopeo_round_trip_on_s3(seaweedfs: SeaweedFS, bucket: str, tmp_path: Path) -> None:
    source = Layout(tmp_path / "source")
    source.index(image_manifest(source, "amd64", [12 * MIB + 5, 700_000, 3]), "v1")
    with s3_server(
        tmp_path / "srv", s3_backend(seaweedfs, bucket), "/skopeo", redirect=True
    ) as server:
        ref = f"docker://{server.url.removeprefix('http://')}/skopeo/app:v1"
        skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
               f"oci:{source.root}:v1", ref)  # fmt: skip
        out = tmp_path / "out"
        skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{out}:v1")
    assert blobs_of(out) == blobs_of(source.root)
    index = json.loads((out / "index.json").read_text())
    assert len(index["manifests"]) == 1


def test_import_writes_straight_to_the_bucket(backend: Backend, tmp_path: Path) -> None:
    # `ocistore import --config`: the blobs go into the bucket in parallel multipart uploads
    # (a 12 MiB layer is three parts of 5 MiB), a second import skips every blob unread, and a
    # server on the bucket serves the image.
    import subprocess
    import sys

    source = Layout(tmp_path / "layout")
    descriptor = image_manifest(source, "amd64", [12 * MIB + 7, 300_000, 40_000])
    source.index(descriptor, "v1")
    config = backend_config(tmp_path / "config.yml", backend, "/imports")

    def run_import() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ocistore.cli", "import", "--config", str(config),
             str(source.root), "imported/app:v1"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "4 blobs ingested, 0 already present" in run_import()
    assert "0 blobs ingested, 4 already present" in run_import()
    with s3_server(tmp_path / "srv", backend, "/imports") as server, server.client() as client:
        r = client.get("/v2/imported/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.headers["docker-content-digest"] == descriptor["digest"]
        for layer in r.json()["layers"]:
            got = client.get(f"/v2/imported/app/blobs/{layer['digest']}").content
            assert got == (source.root / "blobs" / "sha256" / layer["digest"][7:]).read_bytes()


def test_distribution_and_ocistore_share_one_bucket(
    seaweedfs: SeaweedFS, bucket: str, tmp_path: Path
) -> None:
    """Differential: what one registry pushes to S3, the other serves, both ways."""
    ours, theirs = make_image(45, layers=2, layer_size=6 * MIB), make_image(46, layers=2)
    with (
        s3_server(tmp_path / "o", s3_backend(seaweedfs, bucket), "/both") as server,
        server.client() as c,
    ):
        ours_digest = push_image(c, "mixed/app", ours, "ours")
    storage = seaweedfs.storage_s3(bucket, "/both")
    with reference_registry(tmp_path, tmp_path, s3=storage, redirect=False) as reference:
        r = reference.get_manifest("mixed/app", "ours")
        assert r.status == 200 and r.body == ours.manifest
        for digest, data in ours.blobs.items():
            assert reference.get_blob("mixed/app", digest).body == data
        for digest, data in theirs.blobs.items():
            reference.push_blob("mixed/app", data, digest)
        theirs_digest = reference.put_manifest("mixed/app", "theirs", theirs.manifest, OCI_MANIFEST)
    with (
        s3_server(tmp_path / "o2", s3_backend(seaweedfs, bucket), "/both") as server,
        server.client() as c,
    ):
        assert sorted(c.get("/v2/mixed/app/tags/list").json()["tags"]) == ["ours", "theirs"]
        assert c.get("/v2/mixed/app/manifests/theirs").content == theirs.manifest
        assert c.get(f"/v2/mixed/app/manifests/{theirs_digest}").status_code == 200
        assert c.get(f"/v2/mixed/app/manifests/{ours_digest}").content == ours.manifest
        for digest, data in theirs.blobs.items():
            assert c.get(f"/v2/mixed/app/blobs/{digest}").content == data


def test_fsck_checks_and_repairs_object_storage(backend: Backend, tmp_path: Path) -> None:
    import subprocess
    import sys
    import uuid

    from ocistore._core import Digest, Layout
    from ocistore.server.config import load_config

    from .images import push

    config = backend_config(tmp_path / "config.yml", backend, f"/fsck-{uuid.uuid4().hex[:8]}")
    driver = load_config(config).storage_driver()
    registry = Registry(driver)
    image = make_image(50, layers=3)
    push(registry.repository("fsck/app"), image, "v1")
    clean = fsck(registry)
    assert clean.problems == [] and clean.blobs_checked == len(image.blobs) + 1
    corrupt, malformed, dangling = (Digest(digest_of(layer)) for layer in image.layers)
    driver.write(Layout.blob_data(corrupt), b"x" * len(image.layers[0]))
    driver.write(Layout.layer_link("fsck/app", malformed), str(dangling).encode())
    driver.delete(Layout.blob_data(dangling))
    driver.write(f"{Layout.blobs()}/sha256/zz/stray/data", b"?")
    kinds = sorted(p.kind for p in fsck(registry).problems)
    assert kinds == [
        "corrupt-blob", "dangling-layer-link", "incomplete-manifest", "incomplete-manifest",
        "malformed-layer-link", "stray-in-blob-tree",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "ocistore.cli", "fsck", "--config", str(config), "--repair",
         "--jobs", "3", "--rate-mib", "100"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # what was incomplete is still a person's call
    assert "repaired: corrupt-blob" in done.stdout
    # Quarantined, never deleted: the corrupt bytes are kept aside, out of the blob tree.
    kept = driver.read(f"{Layout.quarantine()}/{corrupt.algorithm}-{corrupt.hex}")
    assert kept == b"x" * len(image.layers[0])
    assert driver.read(Layout.blob_data(corrupt)) is None
    assert Layout.parse_link(driver.read(Layout.layer_link("fsck/app", malformed)) or b"") == (
        malformed
    )
    assert driver.read(Layout.layer_link("fsck/app", dangling)) is None
