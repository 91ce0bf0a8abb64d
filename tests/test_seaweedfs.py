"""The SeaweedFS helper (tests/seaweedfs.py) itself, and the key layout distribution 2.8.2 writes
with its S3 driver, which ocistore's S3 backend has to match."""

from __future__ import annotations

import datetime
import http.client
import os
import random
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ocistore.storage import OCI_MANIFEST

from .distribution import Response, reference_registry
from .images import digest_of, make_image
from .seaweedfs import GRPC_OFFSET, S3Error, SeaweedFS, sigv4_headers
from .seaweedfs import seaweedfs as start_seaweedfs

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_sigv4_matches_the_aws_example() -> None:
    # The "GET Object" example of AWS's "Signature Calculations for the Authorization Header".
    headers = sigv4_headers(
        "GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, {"Range": "bytes=0-9"},
        EMPTY_SHA256,
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        now=datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC),
    )  # fmt: skip
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_buckets_objects_and_listing(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.bucket()
    assert seaweedfs.list_keys(bucket) == []
    objects = {
        "a/1": b"one",
        "a/2": b"",
        "a/b/3": os.urandom(70_000),
        "b/with space+plus~tilde=eq&amp": b"odd key",
        "c/\u00e9t\u00e9": b"utf-8 key",
    }
    for key, data in objects.items():
        seaweedfs.put_object(bucket, key, data)
    assert seaweedfs.list_keys(bucket) == sorted(objects)
    assert seaweedfs.list_keys(bucket, "a/") == ["a/1", "a/2", "a/b/3"]
    assert seaweedfs.list_keys(bucket, "a/b") == ["a/b/3"]
    assert seaweedfs.list_keys(bucket, "zzz") == []
    # Continuation tokens: five keys in pages of two.
    assert seaweedfs.list_keys(bucket, page_size=2) == sorted(objects)
    for key, data in objects.items():
        assert seaweedfs.get_object(bucket, key) == data
    seaweedfs.put_object(bucket, "a/1", b"replaced")
    assert seaweedfs.get_object(bucket, "a/1") == b"replaced"
    with pytest.raises(S3Error, match="404"):
        seaweedfs.get_object(bucket, "a/missing")

    # Buckets are separate, and creating one twice is refused.
    other = seaweedfs.bucket()
    assert other != bucket
    assert seaweedfs.list_keys(other) == []
    with pytest.raises(S3Error, match="409"):
        seaweedfs.bucket(bucket)


def test_wrong_credentials_are_refused(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.bucket()
    seaweedfs.put_object(bucket, "key", b"secret data")
    attempts: dict[str, Response] = {
        "wrong secret": seaweedfs.request("GET", bucket, "key", secret_key="not-the-secret"),
        "unknown key": seaweedfs.request("GET", bucket, "key", access_key="AKIANOBODY"),
        "anonymous": seaweedfs.request("GET", bucket, "key", sign=False),
        "anonymous list": seaweedfs.request("GET", bucket, sign=False),
    }
    for what, r in attempts.items():
        assert r.status == 403, (what, r)
        assert b"secret data" not in r.body
    assert b"SignatureDoesNotMatch" in attempts["wrong secret"].body
    written = seaweedfs.request("PUT", bucket, "planted", body=b"x", secret_key="not-the-secret")
    assert written.status == 403
    assert seaweedfs.request("PUT", "planted-bucket", sign=False).status == 403
    assert seaweedfs.list_keys(bucket) == ["key"]


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    """/proc/net/tcp's ``0100007F:208D``: the address in 32-bit host-order words, then port."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def test_weed_listens_on_loopback_only(seaweedfs: SeaweedFS) -> None:
    pids = _group_pids(seaweedfs.proc.pid)
    assert seaweedfs.proc.pid in pids
    inodes = set().union(*(_socket_inodes(pid) for pid in pids))
    listening: list[tuple[str, str, int]] = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            # TCP: listening sockets only (0A); UDP: every bound socket receives.
            if fields[9] in inodes and (proto.startswith("udp") or fields[3] == "0A"):
                listening.append((proto, *_address(fields[1])))
    assert listening, "found none of weed's sockets in /proc/net"
    assert all(proto == "tcp" and host == "127.0.0.1" for proto, host, _ in listening), listening
    # Exactly the ports the fixture chose for it, HTTP and gRPC.
    chosen = [p + d for p in seaweedfs.ports.values() for d in (0, GRPC_OFFSET)]
    assert sorted(port for _, _, port in listening) == sorted(chosen)


def test_a_second_instance_runs_alongside(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    with start_seaweedfs(tmp_path) as other:
        assert not set(other.ports.values()) & set(seaweedfs.ports.values())
        bucket = other.bucket()
        other.put_object(bucket, "k", b"v")
        assert other.get_object(bucket, "k") == b"v"
        # Separate servers: the first knows nothing of the second's bucket.
        assert seaweedfs.request("GET", bucket, query={"list-type": "2"}).status == 404
    assert seaweedfs.list_keys(seaweedfs.bucket()) == []  # the first one is unharmed


def _follow(location: str) -> Response:
    url = urlsplit(location)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        conn.request("GET", f"{url.path}?{url.query}")
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


V2 = "reg/docker/registry/v2"  # rootdirectory /reg


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "no-redirect"])
def test_distribution_blob_layout_on_s3(
    seaweedfs: SeaweedFS, tmp_path: Path, redirect: bool
) -> None:
    """A monolithic blob push (POST + PUT) to distribution 2.8.2 on S3 leaves exactly the blob
    data and the repository's layer link: the layout ocistore's S3 backend must write."""
    bucket = seaweedfs.bucket()
    blob = random.Random(5).randbytes(70_000)
    digest = digest_of(blob)
    hex_digest = digest.removeprefix("sha256:")
    s3 = seaweedfs.storage_s3(bucket, rootdirectory="/reg")
    with reference_registry(tmp_path / "unused", tmp_path, s3=s3, redirect=redirect) as client:
        client.push_blob("library/app", blob, digest)
        got = client.get_blob("library/app", digest)

    data = f"{V2}/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    link = f"{V2}/repositories/library/app/_layers/sha256/{hex_digest}/link"
    assert seaweedfs.list_keys(bucket) == [data, link]
    assert seaweedfs.get_object(bucket, data) == blob
    assert seaweedfs.get_object(bucket, link) == digest.encode()
    assert not (tmp_path / "unused").exists()
    if redirect:
        # The default: 307 to a URL presigned for the S3 endpoint (clients must reach it).
        assert got.status == 307, got
        location = got.headers["location"]
        assert location.startswith(f"{seaweedfs.endpoint}/{bucket}/{data}?"), location
        assert "X-Amz-Signature=" in location
        followed = _follow(location)
        assert followed.status == 200 and followed.body == blob
    else:
        assert got.status == 200 and got.body == blob, got


def test_distribution_manifest_layout_on_s3(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    """An image pushed by tag: blobs (manifest included) by digest, layer links for every blob,
    the manifest's revision link, the tag's current and index links; no upload state left."""
    bucket = seaweedfs.bucket()
    image = make_image(7, layers=2, layer_size=20_000)
    s3 = seaweedfs.storage_s3(bucket, rootdirectory="/reg")
    with reference_registry(tmp_path / "unused", tmp_path, s3=s3) as client:
        for digest, data in image.blobs.items():
            client.push_blob("team/app", data, digest)
        assert client.put_manifest("team/app", "v1", image.manifest, OCI_MANIFEST) == image.digest
        fetched = client.get_manifest("team/app", "v1")
        assert fetched.status == 200 and fetched.body == image.manifest

    repo = f"{V2}/repositories/team/app"
    m = image.digest.removeprefix("sha256:")
    blobs = {*image.blobs, image.digest}
    expected = [
        *(f"{V2}/blobs/sha256/{d[7:9]}/{d[7:]}/data" for d in blobs),
        *(f"{repo}/_layers/sha256/{d[7:]}/link" for d in image.blobs),
        f"{repo}/_manifests/revisions/sha256/{m}/link",
        f"{repo}/_manifests/tags/v1/current/link",
        f"{repo}/_manifests/tags/v1/index/sha256/{m}/link",
    ]
    assert seaweedfs.list_keys(bucket) == sorted(expected)
    for key in expected:
        if key.endswith("/link"):
            assert seaweedfs.get_object(bucket, key).startswith(b"sha256:")
    assert seaweedfs.get_object(bucket, f"{repo}/_manifests/tags/v1/current/link") == (
        image.digest.encode()
    )
    assert seaweedfs.get_object(bucket, f"{V2}/blobs/sha256/{m[:2]}/{m}/data") == image.manifest
