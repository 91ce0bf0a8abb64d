from __future__ import annotations

import hashlib
import io
import shutil
import threading
from pathlib import Path

import blake3 as blake3_reference
import pytest
from ocistore import BlobStore, Descriptor, Digest
from ocistore.errors import (
    ErrBlobInvalidDigest,
    ErrBlobInvalidLength,
    ErrBlobUnknown,
    ErrBlobUploadUnknown,
    ErrDigestInvalid,
)
from ocistore.interfaces import BlobStore as BlobStoreProtocol
from ocistore.interfaces import ReadSeekCloser

from .conftest import pattern


def sha256(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def blob_path(root: Path, digest: Digest) -> Path:
    return (
        root / "docker/registry/v2/blobs" / digest.algorithm / digest.hex[:2] / digest.hex / "data"
    )


def test_implements_the_protocols(store: BlobStore) -> None:
    assert isinstance(store, BlobStoreProtocol)
    d = store.put("application/octet-stream", b"x")
    with store.open(d.digest) as reader:
        assert isinstance(reader, ReadSeekCloser)


def test_put_stat_get_on_distribution_layout(store: BlobStore) -> None:
    data = b"hello, registry"
    desc = store.put("application/vnd.oci.image.layer.v1.tar", data)
    assert desc == Descriptor("application/vnd.oci.image.layer.v1.tar", sha256(data), len(data))
    assert blob_path(Path(store.root), desc.digest).read_bytes() == data
    assert store.stat(desc.digest) == Descriptor("application/octet-stream", desc.digest, len(data))
    assert store.get(str(desc.digest)) == data
    assert list(store.enumerate()) == [desc.digest]
    # Putting the same bytes again is a no-op that succeeds.
    assert store.put("x", data).digest == desc.digest
    assert list(store.enumerate()) == [desc.digest]


def test_unknown_blobs(store: BlobStore) -> None:
    missing = sha256(b"nope")
    for call in (store.stat, store.get, store.open, store.delete):
        with pytest.raises(ErrBlobUnknown) as info:
            call(missing)
        assert info.value.code == "BLOB_UNKNOWN" and info.value.status == 404
        assert info.value.detail == {"digest": str(missing)}


def test_bad_digests_touch_nothing(store: BlobStore, tmp_path: Path) -> None:
    for bad in ("sha256:../../../../etc/passwd", "sha256:" + "A" * 64, "md5:abc"):
        for call in (store.stat, store.get, store.open, store.delete):
            with pytest.raises(ErrDigestInvalid):
                call(bad)
    assert not (tmp_path / "root").exists()


def test_delete_and_enumerate(store: BlobStore) -> None:
    digests = sorted(store.put("x", bytes([i]) * 10).digest for i in range(5))
    b3 = store.put("x", b"blake", algorithm="blake3").digest
    assert b3 == "blake3:" + blake3_reference.blake3(b"blake").hexdigest()
    assert list(store.enumerate()) == [b3, *digests]
    store.delete(digests[0])
    assert not blob_path(Path(store.root), digests[0]).parent.exists()
    with pytest.raises(ErrBlobUnknown):
        store.stat(digests[0])
    assert list(store.enumerate()) == [b3, *digests[1:]]
    # Strays in the tree are not blobs.
    stray = Path(store.root) / "docker/registry/v2/blobs/sha256/zz/not-a-digest"
    stray.mkdir(parents=True)
    (stray / "data").write_bytes(b"")
    wrong_prefix = Path(store.root) / "docker/registry/v2/blobs/sha256/00" / ("f" * 64)
    wrong_prefix.mkdir(parents=True)
    (wrong_prefix / "data").write_bytes(b"")
    assert list(store.enumerate()) == [b3, *digests[1:]]


def test_ranged_reads(store: BlobStore) -> None:
    data = pattern(100_000)
    d = store.put("x", data).digest
    with store.open(d) as r:
        assert r.size == len(data)
        assert r.read_at(0, 10) == data[:10]
        assert r.read_at(len(data) - 1, 10) == data[-1:]
        assert r.read_at(len(data), 10) == b""
        assert r.read_at(len(data) + 5, 10) == b""
        assert r.tell() == 0  # positional reads leave the cursor alone
        assert r.read(5) == data[:5]
        assert r.seek(-1, io.SEEK_END) == len(data) - 1
        assert r.read() == data[-1:]
        assert r.read() == b"" and r.read(10) == b""
        assert r.seek(10, io.SEEK_END) == len(data) + 10
        assert r.read(1) == b""
        r.seek(1000)
        assert r.seek(500, io.SEEK_CUR) == 1500
        buf = bytearray(64)
        assert r.readinto(buf) == 64 and bytes(buf) == data[1500:1564]
        assert r.tell() == 1564
        r.seek(len(data) - 3)
        assert r.readinto(buf) == 3 and bytes(buf[:3]) == data[-3:]
        assert r.readinto(buf) == 0
        with pytest.raises(ValueError, match="negative"):
            r.seek(-1)
        with pytest.raises(ValueError, match="negative"):
            r.seek(-len(data) - 1, io.SEEK_END)
        with pytest.raises(ValueError, match="negative"):
            r.read_at(-1, 1)
        with pytest.raises(TypeError):
            r.readinto(b"immutable")
    assert r.closed
    with pytest.raises(ValueError, match="closed"):
        r.read()


def test_reader_works_with_copyfileobj(store: BlobStore) -> None:
    data = pattern(3 * 1024 * 1024 + 17)
    d = store.put("x", data).digest
    out = io.BytesIO()
    with store.open(d) as r:
        shutil.copyfileobj(r, out, 65536)
    assert out.getvalue() == data
    with store.open(d) as r:
        assert io.BufferedReader(r).read() == data  # type: ignore[arg-type]


def test_writer_accepts_buffers_and_files(store: BlobStore, tmp_path: Path) -> None:
    data = pattern(20 * 1024 * 1024 + 3)
    source = tmp_path / "src"
    source.write_bytes(data)
    with store.create() as w:
        assert w.write(memoryview(data)[:10]) == 10
        assert w.write(bytearray(data[10:1000])) == 990
        with source.open("rb") as f:
            f.seek(1000)
            seen: list[int] = []
            assert w.read_from(f, progress=seen.append) == len(data) - 1000
        assert sum(seen) == len(data) - 1000
        assert w.size == len(data)
        desc = w.commit(Descriptor("application/x", sha256(data), len(data)))
    assert desc == Descriptor("application/x", sha256(data), len(data))
    assert blob_path(Path(store.root), desc.digest).read_bytes() == data
    # read_from also takes objects that only have read().

    class OnlyRead:
        def __init__(self) -> None:
            self.inner = io.BytesIO(data[:5000])

        def read(self, n: int) -> bytes:
            return self.inner.read(min(n, 777))

    w = store.create()
    assert w.read_from(OnlyRead()) == 5000
    assert w.commit(sha256(data[:5000])).size == 5000


def test_mismatched_commit_leaves_no_blob(store: BlobStore) -> None:
    data = pattern(1_000_000)
    w = store.create()
    w.write(data)
    wrong = sha256(b"other")
    with pytest.raises(ErrBlobInvalidDigest) as info:
        w.commit(wrong)
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.detail == {"expected": str(wrong), "actual": str(sha256(data))}
    with pytest.raises(ErrBlobInvalidLength) as size_info:
        w.commit(Descriptor("x", sha256(data), len(data) + 1))
    assert size_info.value.code == "SIZE_INVALID"
    assert list(store.enumerate()) == []
    assert not blob_path(Path(store.root), wrong).parent.exists()
    # Nothing was lost: the upload is intact and can still be committed correctly.
    assert w.commit(sha256(data)).size == len(data)
    assert store.get(sha256(data)) == data


def test_commit_in_another_algorithm(store: BlobStore) -> None:
    data = pattern(300_000)
    w = store.create()
    w.write(data)
    b3 = Digest("blake3:" + blake3_reference.blake3(data).hexdigest())
    assert w.commit(b3).digest == b3
    assert store.get(b3) == data
    w = store.create(algorithm="sha512")
    w.write(data)
    assert w.digest() == "sha512:" + hashlib.sha512(data).hexdigest()
    assert w.commit(sha256(data)).digest == sha256(data)


def test_upload_layout_and_checkpoints(store: BlobStore) -> None:
    w = store.create()
    uploads = Path(store.root) / "docker/registry/v2/_uploads" / w.id
    assert (uploads / "data").is_file()
    started = (uploads / "startedat").read_text()
    assert w.started_at is not None and w.started_at.isoformat().startswith(started[:19])
    w.write(b"a" * 100)
    w.checkpoint()
    w.write(b"b" * 50)
    w.close()
    states = sorted(p.name for p in (uploads / "hashstates/sha256").iterdir())
    assert states == ["150"]  # only the newest state is kept
    state = (uploads / "hashstates/sha256/150").read_bytes()
    assert state[:4] == b"sha\x03" and len(state) == 108
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")
    w = store.resume(w.id)
    assert w.size == 150
    w.cancel()
    assert not uploads.exists()
    with pytest.raises(ErrBlobUploadUnknown):
        store.resume(w.id)


@pytest.mark.parametrize(
    "bad_id", ["../../../etc", "", "x" * 36, "6F9619FF-8B86-D011-B42D-00C04FC964FF", "a/b"]
)
def test_resume_rejects_unknown_ids(store: BlobStore, bad_id: str) -> None:
    with pytest.raises(ErrBlobUploadUnknown) as info:
        store.resume(bad_id)
    assert info.value.code == "BLOB_UPLOAD_UNKNOWN"


def test_resume_after_uncheckpointed_tail_and_corrupt_state(store: BlobStore) -> None:
    data = pattern(5_000_000)
    w = store.create()
    w.write(data[:2_000_000])
    w.checkpoint()
    w.write(data[2_000_000:3_000_000])  # never checkpointed: resume re-hashes this tail
    uploads = Path(store.root) / "docker/registry/v2/_uploads" / w.id
    del w
    w = store.resume(uploads.name)
    assert w.size == 3_000_000
    w.write(data[3_000_000:4_000_000])
    w.close()
    # A torn or foreign state file is skipped in favour of re-hashing from an older point.
    (uploads / "hashstates/sha256/4000000").write_bytes(b"garbage")
    w = store.resume(uploads.name)
    assert w.size == 4_000_000
    w.write(data[4_000_000:])
    assert w.commit(Descriptor("x", sha256(data), len(data))).size == len(data)


def test_eight_threads_commit_the_same_blob(store: BlobStore) -> None:
    data = pattern(4 * 1024 * 1024)
    barrier = threading.Barrier(8)
    results: list[Descriptor | BaseException] = []

    def push() -> None:
        try:
            w = store.create()
            w.write(data)
            barrier.wait()
            results.append(w.commit(sha256(data)))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, Descriptor) for r in results), results
    assert len(results) == 8
    assert list(store.enumerate()) == [sha256(data)]
    assert store.get(sha256(data)) == data
    assert list((Path(store.root) / "docker/registry/v2/_uploads").iterdir()) == []


def test_readers_never_see_a_partial_blob(store: BlobStore) -> None:
    data = pattern(32 * 1024 * 1024)
    digest = sha256(data)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                with store.open(digest) as r:
                    size = r.size
                    body = r.read()
            except ErrBlobUnknown:
                continue
            seen.append(size)
            if size != len(data) or hashlib.sha256(body).digest() != bytes.fromhex(digest.hex):
                errors.append(f"partial or wrong blob of {size} bytes")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for _ in range(3):
            w = store.create()
            for i in range(0, len(data), 1 << 20):
                w.write(data[i : i + (1 << 20)])
            w.commit(digest)
            store.delete(digest)
        w = store.create()
        w.write(data)
        w.commit(digest)
        while not seen:
            pass
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert errors == []
    assert seen


def test_put_failure_cleans_its_upload(store: BlobStore) -> None:
    with pytest.raises(ErrDigestInvalid):
        store.put("x", b"data", algorithm="md5")
    with pytest.raises(TypeError):
        store.put("x", "text")  # type: ignore[arg-type]
    uploads = Path(store.root) / "docker/registry/v2/_uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_a_commit_of_the_global_store_links_nothing(store: BlobStore) -> None:
    # Only an upload of a repository links (ocistore.storage); the global store publishes.
    w = store.create()
    w.write(b"unlinked")
    w.commit(sha256(b"unlinked"))
    assert store.get(sha256(b"unlinked")) == b"unlinked"
    assert not (Path(store.root) / "docker/registry/v2/repositories").exists()


@pytest.mark.parametrize("caching", ["keep", "stream", "direct"])
def test_write_from_reads_a_file_region_in_the_core(
    store: BlobStore, tmp_path: Path, caching: str
) -> None:
    # Crosses the 8 MiB direct stage twice, starts mid-page, and mixes with plain writes.
    source = tmp_path / "source.bin"
    data = pattern(19 * 1024 * 1024 + 4321)
    source.write_bytes(data)
    start = 12345
    expected = b"head" + data[start:] + b"tail"
    writer = store.create(caching=caching)  # type: ignore[arg-type]
    writer.write(b"head")
    assert writer.write_from(source, start, 5 * 1024 * 1024) == 5 * 1024 * 1024
    # Asked for more than the file holds: stops at its end and says how much it took.
    assert (
        writer.write_from(source, start + 5 * 1024 * 1024, len(data))
        == len(data) - start - 5 * 1024 * 1024
    )
    assert writer.write_from(source, len(data), 100) == 0
    writer.write(b"tail")
    assert writer.size == len(expected)
    digest = "sha256:" + hashlib.sha256(expected).hexdigest()
    writer.commit(Descriptor("application/octet-stream", digest, len(expected)))
    assert store.get(digest) == expected


def test_write_from_a_missing_file_changes_nothing(store: BlobStore, tmp_path: Path) -> None:
    writer = store.create(caching="direct")
    writer.write(b"abc")
    with pytest.raises(FileNotFoundError):
        writer.write_from(tmp_path / "absent", 0, 10)
    writer.write(b"def")
    digest = "sha256:" + hashlib.sha256(b"abcdef").hexdigest()
    writer.commit(Descriptor("application/octet-stream", digest, 6))
    assert store.get(digest) == b"abcdef"
