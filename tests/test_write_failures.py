"""A disk that refuses writes in the middle of a push (full, or a file-size limit): the client
gets an error naming the failed write, the upload keeps every byte that reached the disk and
resumes from the Range the server reports once the disk takes writes again, nothing half
written is published, and the registry goes on serving. The server runs with RLIMIT_FSIZE,
which fails writes past the limit with EFBIG as a full disk fails them with ENOSPC; the same
with the native front (which writes upload bodies itself) and with the application alone."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from .servers import ocistore_server

MiB = 1024 * 1024
REPO = "disk/full"
SERVERS = {"front": ["--native-front"], "app": ["--no-native-front"]}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_refused_write_loses_nothing_and_the_upload_resumes(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "root"
    small = os.urandom(MiB)
    data = os.urandom(9 * MiB + 17)
    limited = ocistore_server(root, extra=SERVERS[kind], file_size_limit=3 * MiB)
    with limited as server, server.client() as client:
        location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        r = client.put(f"{location}?digest={digest_of(small)}", content=small)
        assert r.status_code == 201, r.text
        location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        first = client.patch(
            location, content=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"}
        )
        assert first.status_code == 202, first.text
        r = client.patch(
            first.headers["location"],
            content=data[MiB:],
            headers={"Content-Range": f"{MiB}-{len(data) - 1}"},
        )
        assert r.status_code == 500, r.text
        error = r.json()["errors"][0]
        assert error["code"] == "UNKNOWN"
        assert error["message"].startswith("the registry's storage failed: ")
        assert "File too large" in error["message"]
        status = client.get(location)
        assert status.status_code == 204
        kept = int(status.headers["range"].split("-")[1]) + 1
        assert MiB <= kept <= 3 * MiB
        # A commit now is refused without publishing anything.
        r = client.put(f"{location}?digest={digest_of(data)}")
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status_code == 404
        # The registry goes on serving what it has.
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(small)}").content == small
    with ocistore_server(root, extra=SERVERS[kind]) as server, server.client() as client:
        status = client.get(location)
        assert status.headers["range"] == f"0-{kept - 1}"
        r = client.put(
            f"{location}?digest={digest_of(data)}",
            content=data[kept:],
            headers={"Content-Range": f"{kept}-{len(data) - 1}"},
        )
        assert r.status_code == 201, r.text
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(data)}").content == data
        leftovers = list((root / "docker/registry/v2/repositories" / REPO / "_uploads").iterdir())
        assert leftovers == []


def test_a_refused_manifest_write_publishes_nothing(tmp_path: Path) -> None:
    """A manifest the disk will not take: an error, and neither the manifest nor its tag."""
    root = tmp_path / "root"
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(4 * MiB)  # pushed before the limit
    with ocistore_server(root) as server, server.client() as client:
        for blob in (config, layer):
            location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
            assert (
                client.put(f"{location}?digest={digest_of(blob)}", content=blob).status_code == 201
            )
    manifest = httpx.Response(200, json={
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer), "size": len(layer)}],
        "annotations": {"padding": "x" * 4096},
    }).content  # fmt: skip
    with ocistore_server(root, file_size_limit=1024) as server, server.client() as client:
        r = client.put(
            f"/v2/{REPO}/manifests/v1",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert r.status_code == 500, r.text
        assert "File too large" in r.json()["errors"][0]["message"]
        assert client.get(f"/v2/{REPO}/manifests/v1").status_code == 404
        assert client.get(f"/v2/{REPO}/manifests/{digest_of(manifest)}").status_code == 404
        assert client.get(f"/v2/{REPO}/blobs/{digest_of(layer)}").content == layer
