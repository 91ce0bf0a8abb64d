"""The object-store backend (``ObjectStore``, ``BlobStore.on_object_store``) against a real
SeaweedFS S3 server started for this module."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ocistore import _core
from ocistore.errors import (
    ErrBlobInvalidDigest,
    ErrBlobInvalidLength,
    ErrBlobUnknown,
    ErrBlobUploadInvalid,
    ErrBlobUploadUnknown,
)

from .conftest import run_python
from .seaweedfs import SeaweedFS

MiB = 1024 * 1024
UPLOADS = "docker/registry/v2/repositories/a/_uploads"


@dataclass(frozen=True)
class Target:
    """The SeaweedFS the tests' stores live on: endpoint, a bucket of this module's, identity."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def argv(self) -> list[str]:
        return [self.endpoint, self.bucket, self.access_key, self.secret_key]


@pytest.fixture(scope="module")
def target(seaweedfs: SeaweedFS) -> Target:
    return Target(
        seaweedfs.endpoint, seaweedfs.bucket(), seaweedfs.access_key, seaweedfs.secret_key
    )


def connect(target: Target, root: str, chunk_size: int = 5 * MiB) -> _core.ObjectStore:
    return _core.ObjectStore(
        target.bucket,
        endpoint=target.endpoint,
        access_key=target.access_key,
        secret_key=target.secret_key,
        root_directory=root,
        chunk_size=chunk_size,
    )


@pytest.fixture
def root() -> str:
    """A root directory of its own for each test."""
    return f"/t-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def store(target: Target, root: str) -> _core.ObjectStore:
    return connect(target, root)


@pytest.fixture
def blobs(store: _core.ObjectStore) -> _core.Storage:
    return _core.Storage.on_object_store(store)


def data_of(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


#: Prefix of a child process that opens the same store: argv is the target, root, then the
#: test's own (``args``).
CHILD = """
import random, sys, time
from ocistore import _core
endpoint, bucket, access_key, secret_key, root = sys.argv[1:6]
args = sys.argv[6:]
store = _core.ObjectStore(
    bucket, endpoint=endpoint, access_key=access_key, secret_key=secret_key,
    root_directory=root, chunk_size=5 * 1024 * 1024,
)
blobs = _core.Storage.on_object_store(store)
UPLOADS = "docker/registry/v2/repositories/a/_uploads"
def data_of(size, seed=7):
    return random.Random(seed).randbytes(size)
"""


def in_child(target: Target, root: str, code: str, *args: object) -> str:
    done = run_python(CHILD + code, *target.argv(), root, *map(str, args))
    return done.stdout


# --- ObjectStore: the metadata driver -------------------------------------------------------


def test_read_write_stat_list_walk_delete(
    store: _core.ObjectStore, root: str, target: Target
) -> None:
    assert store.url == f"s3://{target.bucket}/{root.strip('/')}"
    assert store.root_directory == root.strip("/")
    assert (store.bucket, store.chunk_size) == (target.bucket, 5 * MiB)
    link = "docker/registry/v2/repositories/a/_layers/sha256/" + "ab" * 32 + "/link"
    assert store.read(link) is None
    assert store.stat(link) is None
    assert store.list("docker") == []
    store.write(link, b"sha256:" + b"ab" * 32)
    store.write("docker/registry/v2/repositories/a/_manifests/tags/v1/current/link", b"x")
    store.write("docker/registry/v2/repositories/b/x", bytearray(b"yz"))
    assert store.read(link) == b"sha256:" + b"ab" * 32
    assert store.read_range(link, 7, 4) == b"abab"
    assert store.read_range(link, 70, 10) == b"b"
    assert store.read_range(link, 71, 10) == b""
    size, mtime = store.stat(link) or (0, 0.0)
    assert size == 71 and abs(mtime - time.time()) < 600
    assert store.list("") == ["docker"]
    assert store.list("docker/registry/v2/repositories") == ["a", "b"]
    assert store.list("docker/registry/v2/repositories/a/") == ["_layers", "_manifests"]
    assert store.list("docker/registry/v2/repositories/b") == ["x"]
    assert store.walk("docker/registry/v2/repositories/a") == [
        "docker/registry/v2/repositories/a/_layers/sha256/" + "ab" * 32 + "/link",
        "docker/registry/v2/repositories/a/_manifests/tags/v1/current/link",
    ]
    assert len(store.walk("")) == 3
    # A prefix is a whole segment: "a" does not list "ab".
    store.write("docker/registry/v2/repositories/ab", b"1")
    assert store.walk("docker/registry/v2/repositories/a")[0].endswith("/link")
    assert len(store.walk("docker/registry/v2/repositories/a")) == 2
    repositories = "docker/registry/v2/repositories"
    assert store.any_under(f"{repositories}/a") and store.any_under(f"{repositories}/a/_layers")
    assert not store.any_under(f"{repositories}/c")
    assert not store.any_under(f"{repositories}/b/x")  # an object, with nothing under it

    assert store.delete("docker/registry/v2/repositories/a") is True
    # (SeaweedFS may go on listing an emptied "directory" for a while; AWS does not.)
    assert store.walk("docker/registry/v2/repositories") == [
        "docker/registry/v2/repositories/ab",
        "docker/registry/v2/repositories/b/x",
    ]
    assert store.delete("docker/registry/v2/repositories/a") is False
    assert not store.any_under(f"{repositories}/a")  # even where a stale prefix still lists
    assert store.delete("docker/registry/v2/repositories/ab") is True
    assert store.read("docker/registry/v2/repositories/ab") is None
    with pytest.raises(FileNotFoundError):
        store.read_range("docker/registry/v2/repositories/ab", 0, 1)


def test_keys_cannot_leave_the_root_directory(store: _core.ObjectStore) -> None:
    for bad in ["", "/etc/passwd", "a//b", "a/../../b", "..", "./a", "a/.", "a/\x00"]:
        with pytest.raises(ValueError):
            store.read(bad)
        with pytest.raises(ValueError):
            store.write(bad, b"x")
        with pytest.raises(ValueError):
            store.delete(bad)
        with pytest.raises(ValueError):
            store.stat(bad)
        with pytest.raises(ValueError):
            store.signed_url(bad, 60)
    for bad in ["/", "/a", "a//", "../a"]:
        with pytest.raises(ValueError):
            store.list(bad)
        with pytest.raises(ValueError):
            store.walk(bad)
    with pytest.raises(ValueError):
        _core.Storage.on_object_store(store).create(uploads_dir="a/../b")


def test_signed_url_serves_the_object(store: _core.ObjectStore) -> None:
    store.write("docker/registry/v2/blobs/x/data", b"presigned bytes")
    url = store.signed_url("docker/registry/v2/blobs/x/data", 60)
    assert httpx.get(url).content == b"presigned bytes"
    ranged = httpx.get(url, headers={"Range": "bytes=4-9"})
    assert ranged.status_code == 206 and ranged.content == b"igned "
    # Unsigned requests are refused: the URL's signature is what grants access.
    assert httpx.get(url.split("?")[0]).status_code == 403
    with pytest.raises(ValueError):
        store.signed_url("docker/registry/v2/blobs/x/data", 0)


def test_settings_are_checked(target: Target) -> None:
    bucket, endpoint, key = target.bucket, target.endpoint, target.access_key
    with pytest.raises(ValueError, match="chunk_size"):
        connect(target, "", chunk_size=5 * MiB - 1)
    with pytest.raises(ValueError):
        _core.ObjectStore(bucket, endpoint=endpoint, access_key=key)
    with pytest.raises(ValueError):
        _core.ObjectStore(bucket, endpoint="127.0.0.1:1")
    with pytest.raises(ValueError):
        _core.ObjectStore(bucket, root_directory="a/../b")
    wrong = _core.ObjectStore(bucket, endpoint=endpoint, access_key=key, secret_key="wrong")
    with pytest.raises(OSError):
        wrong.write("x", b"x")


# --- BlobStore on the object store ----------------------------------------------------------


def test_blob_store_put_get_open_enumerate_delete(
    blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    assert blobs.root == store.url
    small, big = b"hello blob", data_of(11 * MiB + 17)
    d_small, n_small = blobs.put(small)
    d_big, n_big = blobs.put(big)
    assert (str(d_small), n_small, str(d_big), n_big) == (
        sha256(small),
        len(small),
        sha256(big),
        len(big),
    )
    assert blobs.put(small) == (d_small, n_small)
    key = f"docker/registry/v2/blobs/sha256/{d_big.hex[:2]}/{d_big.hex}/data"
    assert blobs.path(d_big) == key
    assert store.stat(key) is not None
    assert blobs.stat(d_big) == len(big)
    assert blobs.get(d_small) == small
    assert blobs.get(str(d_big)) == big
    d512, _ = blobs.put(small, "sha512")
    assert blobs.enumerate() == sorted([d_small, d_big, d512], key=lambda d: (d.algorithm, d.hex))

    with blobs.open(d_big) as r:
        assert (r.size, r.digest, r.path) == (len(big), str(d_big), key)
        assert r.read(10) == big[:10]
        assert r.read(100_000) == big[10:100_010]
        assert r.tell() == 100_010
        assert r.read_at(9 * MiB + 3, 5) == big[9 * MiB + 3 : 9 * MiB + 8]
        assert r.tell() == 100_010
        assert r.seek(-20, 2) == len(big) - 20
        assert r.read() == big[-20:]
        assert r.read() == b""
        r.seek(0)
        buf = bytearray(9 * MiB)
        assert r.readinto(buf) == len(buf) and buf == big[: 9 * MiB]
        assert r.read() == big[9 * MiB :]
        assert r.read_at(len(big) - 3, 100) == big[-3:]
    assert r.closed

    blobs.delete(d_small)
    with pytest.raises(ErrBlobUnknown):
        blobs.stat(d_small)
    with pytest.raises(ErrBlobUnknown):
        blobs.get(d_small)
    with pytest.raises(ErrBlobUnknown):
        blobs.open(d_small)
    with pytest.raises(ErrBlobUnknown):
        blobs.delete(d_small)
    assert blobs.enumerate() == sorted([d_big, d512], key=lambda d: (d.algorithm, d.hex))


def state_of(store: _core.ObjectStore, upload_id: str) -> dict[str, object]:
    raw = store.read(f"{UPLOADS}/{upload_id}/ocistore-upload.json")
    assert raw is not None
    state: dict[str, object] = json.loads(raw)
    return state


def test_chunked_upload_resumed_in_another_process(
    target: Target, root: str, blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    total = 23 * MiB + 4321
    data = data_of(total)
    w = blobs.create(uploads_dir=UPLOADS)
    assert (w.size, w.algorithm, w.closed) == (0, "sha256", False)
    assert w.started_at.endswith("Z")
    cut, piece = 0, 1_234_567
    while cut < 14 * MiB:
        w.write(memoryview(data)[cut : cut + piece])
        cut += piece
        piece = piece * 3 % 2_000_003 + 1
    w.checkpoint()
    state = state_of(store, w.id)
    assert state["size"] == cut
    parts = state["parts"]
    assert isinstance(parts, list) and len(parts) == 2
    assert [p["size"] for p in parts] == [5 * MiB, 5 * MiB]
    assert state["spool"] == {"name": state["spool"]["name"], "size": cut - 10 * MiB}  # type: ignore[index]
    assert store.read(f"{UPLOADS}/{w.id}/hashstates/sha256/{cut}") is not None
    assert store.read(f"{UPLOADS}/{w.id}/startedat") == w.started_at.encode()
    w.close()
    assert w.closed

    out = in_child(
        target,
        root,
        """
        upload_id, cut, total = args[0], int(args[1]), int(args[2])
        data = data_of(total)
        w = blobs.resume(upload_id, UPLOADS)
        assert w.size == cut, (w.size, cut)
        for at in range(cut, total, 777_777):
            w.write(data[at : min(at + 777_777, total)])
        print(w.commit(str(w.digest()), total))
        """.replace("\n        ", "\n"),
        w.id,
        cut,
        total,
    )
    assert out.strip() == str(total)
    assert blobs.get(sha256(data)) == data
    assert blobs.stat(sha256(data)) == total
    assert store.walk(f"{UPLOADS}/{w.id}") == []
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume(w.id, UPLOADS)


def test_wrong_digest_leaves_the_upload_resumable(
    blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    data = data_of(6 * MiB + 5)
    w = blobs.create(uploads_dir=UPLOADS)
    w.write(data)
    with pytest.raises(ErrBlobInvalidDigest):
        w.commit(sha256(b"something else"))
    with pytest.raises(ErrBlobInvalidLength):
        w.commit(sha256(data), size=len(data) + 1)
    assert blobs.enumerate() == []
    w.close()
    again = blobs.resume(w.id, UPLOADS)
    assert again.size == len(data)
    with pytest.raises(ErrBlobInvalidDigest):
        again.commit("sha256:" + "0" * 64)
    assert again.commit(sha256(data), len(data)) == len(data)
    assert blobs.get(sha256(data)) == data


def test_small_blob_goes_up_without_multipart(
    blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    w = blobs.create("sha512")
    w.write(b"a small blob")
    w.checkpoint()
    uploads = "docker/registry/v2/_uploads"
    raw = store.read(f"{uploads}/{w.id}/ocistore-upload.json")
    assert raw is not None
    state = json.loads(raw)
    assert (state["multipart_id"], state["parts"], state["algorithm"]) == (None, [], "sha512")
    digest = "sha512:" + hashlib.sha512(b"a small blob").hexdigest()
    assert str(w.digest()) == digest
    assert w.commit(digest) == 12
    assert blobs.get(digest) == b"a small blob"
    assert store.walk(uploads) == []


def test_commit_of_a_blob_already_stored(blobs: _core.Storage, store: _core.ObjectStore) -> None:
    data = data_of(7 * MiB, seed=3)
    digest, _ = blobs.put(data)
    before = store.stat(blobs.path(digest))
    w = blobs.create(uploads_dir=UPLOADS, repository="a")
    w.write(data)
    assert w.commit(digest) == len(data)
    assert blobs.is_linked("a", digest) and not blobs.is_linked("b", digest)
    link = f"docker/registry/v2/repositories/a/_layers/sha256/{str(digest)[7:]}/link"
    assert store.read(link) == str(digest).encode()
    assert store.stat(blobs.path(digest)) == before
    assert store.walk(UPLOADS) == []
    assert blobs.get(digest) == data


def test_cancel_removes_every_key_of_the_upload(
    blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    w = blobs.create(uploads_dir=UPLOADS)
    w.write(data_of(12 * MiB))
    w.checkpoint()
    assert len(store.walk(f"{UPLOADS}/{w.id}")) >= 4
    w.cancel()
    assert store.walk(UPLOADS) == []
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume(w.id, UPLOADS)
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume(str(uuid.uuid4()), UPLOADS)
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume("../../blobs", UPLOADS)


def open_multipart_uploads(seaweedfs: SeaweedFS, target: Target, prefix: str) -> list[str]:
    """The keys of the bucket's unfinished multipart uploads under ``prefix``."""
    r = seaweedfs.request("GET", target.bucket, query={"uploads": "", "prefix": prefix})
    assert r.status == 200, r.body
    tree = ET.fromstring(r.body)
    return [e.text or "" for e in tree.iter() if e.tag.endswith("Key")]


def test_deleting_an_upload_as_purging_does_aborts_its_multipart_upload(
    seaweedfs: SeaweedFS, target: Target, root: str, blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    w = blobs.create(uploads_dir=UPLOADS)
    w.write(data_of(12 * MiB))
    w.checkpoint()
    w.close()
    prefix = f"{root.strip('/')}/{UPLOADS}/{w.id}/"
    assert open_multipart_uploads(seaweedfs, target, prefix) == [prefix + "data"]
    assert store.delete_upload(f"{UPLOADS}/{w.id}")
    assert open_multipart_uploads(seaweedfs, target, prefix) == []
    assert store.walk(f"{UPLOADS}/{w.id}") == []
    assert not store.delete_upload(f"{UPLOADS}/{w.id}")
    with pytest.raises(ValueError):
        store.delete_upload("../outside")


def test_a_stale_writer_cannot_checkpoint_over_a_newer_one(
    target: Target, root: str, blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    data = data_of(9 * MiB)
    stale = blobs.create(uploads_dir=UPLOADS)
    stale.write(data[: 3 * MiB])
    stale.checkpoint()
    in_child(
        target,
        root,
        """
        data = data_of(9 * 1024 * 1024)
        w = blobs.resume(args[0], UPLOADS)
        w.write(data[w.size : 6 * 1024 * 1024])
        w.close()
        """.replace("\n        ", "\n"),
        stale.id,
    )
    stale.write(b"bytes the other writer never saw")
    with pytest.raises(ErrBlobUploadInvalid):
        stale.checkpoint()
    with pytest.raises(ErrBlobUploadInvalid):
        stale.commit(str(stale.digest()))
    current = blobs.resume(stale.id, UPLOADS)
    assert current.size == 6 * MiB
    current.write(data[6 * MiB :])
    assert current.commit(sha256(data)) == len(data)
    assert blobs.get(sha256(data)) == data


def test_a_killed_writer_resumes_from_its_last_checkpoint(
    target: Target, root: str, blobs: _core.Storage
) -> None:
    total = 40 * MiB + 99
    code = (
        CHILD
        + """
total = int(args[0])
data = data_of(total)
w = blobs.create(uploads_dir=UPLOADS)
print(w.id, flush=True)
at, step = 0, 1_500_007
for i in range(1000):
    w.write(data[at : at + step])
    at += step
    if i in (2, 5):
        w.checkpoint()
        print(w.size, flush=True)
    time.sleep(0.05)
"""
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, *target.argv(), root, str(total)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert child.stdout is not None
    upload_id = child.stdout.readline().strip()
    checkpoints = [int(child.stdout.readline()) for _ in range(2)]
    time.sleep(0.6)  # more parts go up after the last checkpoint, and are never recorded
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()

    data = data_of(total)
    w = blobs.resume(upload_id, UPLOADS)
    assert checkpoints == [3 * 1_500_007, 6 * 1_500_007]
    assert w.size == checkpoints[-1]
    assert str(w.digest()) == sha256(data[: w.size])
    w.write(data[w.size :])
    assert w.commit(sha256(data), total) == total
    assert blobs.get(sha256(data)) == data


def test_reads_past_two_blocks_go_on_from_one_streaming_get(blobs: _core.Storage) -> None:
    """A reader that keeps going sequentially past two 8 MiB blocks reads the rest from one
    streaming GET: pieces of odd sizes, a read that starts inside the last cached block and
    ends in the stream, a read of more than a block, the exact end; a jump drops the stream,
    and reading on sequentially from there starts another; closing with one open is clean."""
    data = data_of(45 * MiB + 3, seed=13)
    digest, _ = blobs.put(data)
    with blobs.open(digest) as r:
        got = bytearray()
        while len(got) < 14 * MiB:
            got += r.read(MiB + 7)
        got += r.read(3 * MiB)  # from the cached block into the stream
        got += r.read(9 * MiB)  # more than a block, from the stream
        while piece := r.read(2 * MiB - 1):
            got += piece
        assert got == data
        assert r.read_at(len(data) - 2, 10) == data[-2:]
        r.seek(5 * MiB - 3)
        assert r.read(2 * MiB) == data[5 * MiB - 3 : 7 * MiB - 3]
        tail = b"".join(iter(lambda: r.read(4 * MiB), b""))
        assert tail == data[7 * MiB - 3 :]
    r = blobs.open(digest)
    assert len(b"".join(r.read(2 * MiB) for _ in range(12))) == 24 * MiB  # a stream is open
    r.close()
    assert r.closed


def test_sequential_reads_with_read_ahead_and_jumps(blobs: _core.Storage) -> None:
    """Sequential 1 MiB reads cross several 8 MiB blocks, each fetched while the previous one
    is read; jumps back and forth drop the block in flight and stay exact; closing with a
    block in flight is clean."""
    data = data_of(27 * MiB + 5, seed=11)
    digest, _ = blobs.put(data)
    with blobs.open(digest) as r:
        assert b"".join(iter(lambda: r.read(MiB), b"")) == data
        r.seek(3 * MiB + 1)
        assert r.read(2 * MiB) == data[3 * MiB + 1 : 5 * MiB + 1]
        assert r.read_at(20 * MiB, MiB) == data[20 * MiB : 21 * MiB]
        assert r.read(MiB) == data[5 * MiB + 1 : 6 * MiB + 1]
        assert r.read(9 * MiB) == data[6 * MiB + 1 : 15 * MiB + 1]
    r = blobs.open(digest)
    assert r.read(MiB) == data[:MiB]  # a block in flight behind it now
    r.close()
    assert r.closed


def test_write_from_a_file_into_object_storage(blobs: _core.Storage, tmp_path: Path) -> None:
    data = data_of(11 * MiB + 5, seed=4)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    w = blobs.create()
    assert w.write_from(source, 0, 3 * MiB) == 3 * MiB
    assert w.write_from(source, 3 * MiB, 100 * MiB) == len(data) - 3 * MiB
    digest = sha256(data)
    assert w.commit(digest) == len(data)
    assert blobs.get(digest) == data
