"""Contract tests for the Quay storage engine, from the behaviour Quay documents for its drivers
(``storage/basestorage.py``, ``storage/local.py``) and what its blob uploader relies on
(``data/registry_model/blobuploader.py``)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ocistore import BlobStore
from ocistore.adapters import InvalidStoragePath, OciStoreStorage
from ocistore.adapters.quay import READ_UNTIL_END
from ocistore.errors import (
    ErrBlobInvalidDigest,
    ErrBlobUploadInvalid,
    ErrBlobUploadUnknown,
)

from .conftest import run_python
from .helpers import pattern


def blob_path(data: bytes) -> str:
    """Quay's ``digest_tools.content_path`` for the sha256 of ``data``."""
    hex_ = hashlib.sha256(data).hexdigest()
    return f"sha256/{hex_[:2]}/{hex_}"


def layout_path(root: Path, data: bytes) -> Path:
    hex_ = hashlib.sha256(data).hexdigest()
    return root / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def through_db(metadata: dict[str, Any]) -> dict[str, Any]:
    """Quay keeps storage metadata in a JSON column: what it passes back is what JSON kept."""
    kept: dict[str, Any] = json.loads(json.dumps(metadata))
    return kept


def uploads(root: Path) -> list[str]:
    try:
        return os.listdir(root / "docker/registry/v2/_uploads")
    except FileNotFoundError:
        return []


class Failing:
    """An input stream that yields ``data`` and then fails, like a client that disconnects.

    Only ``read``, like the wrapped request streams Quay passes."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = self._data.read(size if size is not None and size >= 0 else 1 << 30)
        if not chunk:
            raise ConnectionResetError("client went away")
        return chunk


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def storage(root: Path) -> OciStoreStorage:
    return OciStoreStorage(None, str(root))


# -- content by path -------------------------------------------------------------------------


def test_plain_path_put_get_exists_remove(storage: OciStoreStorage, root: Path) -> None:
    assert not storage.exists("userfiles/abc")
    storage.put_content("userfiles/abc", b"some content")
    assert storage.exists("userfiles/abc")
    assert storage.get_content("userfiles/abc") == b"some content"
    assert (root / "quay/userfiles/abc").read_bytes() == b"some content"
    storage.put_content("userfiles/abc", b"replaced")
    assert storage.get_content("userfiles/abc") == b"replaced"
    storage.remove("userfiles/abc")
    assert not storage.exists("userfiles/abc")
    storage.remove("userfiles/abc")  # removing what is gone is not an error, as in LocalStorage


def test_remove_of_a_directory_path_removes_its_tree(storage: OciStoreStorage) -> None:
    storage.put_content("sharedimages/u1/layer", b"a")
    storage.put_content("sharedimages/u1/json", b"b")
    storage.remove("sharedimages/u1")
    assert not storage.exists("sharedimages/u1/layer")
    assert not storage.exists("sharedimages/u1")


def test_blob_path_lands_on_distribution_layout(storage: OciStoreStorage, root: Path) -> None:
    data = pattern(300_000, seed=1)
    path = blob_path(data)
    assert storage.put_content(path, data) == str(layout_path(root, data))
    assert layout_path(root, data).read_bytes() == data
    assert storage.exists(path)
    assert storage.get_content(path) == data
    assert BlobStore(root).get("sha256:" + hashlib.sha256(data).hexdigest()) == data
    assert not (root / "quay").exists()
    storage.remove(path)
    assert not storage.exists(path)
    assert not layout_path(root, data).exists()
    storage.remove(path)


def test_blob_path_refuses_content_with_another_digest(storage: OciStoreStorage) -> None:
    path = blob_path(b"expected")
    with pytest.raises(ErrBlobInvalidDigest):
        storage.put_content(path, b"something else")
    assert not storage.exists(path)
    with pytest.raises(ErrBlobInvalidDigest):
        storage.stream_write(path, io.BytesIO(b"something else"))
    assert not storage.exists(path)


@pytest.mark.parametrize(
    "path",
    [
        "sha256/zz/" + "a" * 64,  # prefix is not the hex's first two digits
        "sha256/ab/abc",  # too short for sha256
        "sha256/AB/AB" + "0" * 62,  # ocistore digests are lowercase
        "md5/ab/ab" + "0" * 30,
    ],
)
def test_digest_lookalike_paths_are_plain_files(
    storage: OciStoreStorage, root: Path, path: str
) -> None:
    storage.put_content(path, b"not a blob")
    assert storage.get_content(path) == b"not a blob"
    assert (root / "quay" / path).read_bytes() == b"not a blob"
    assert not (root / "docker").exists()


@pytest.mark.parametrize("kind", ["plain", "blob"])
def test_missing_content_raises_ioerror(storage: OciStoreStorage, kind: str) -> None:
    path = "nothing/here" if kind == "plain" else blob_path(b"never stored")
    with pytest.raises(IOError):
        storage.get_content(path)
    with pytest.raises(IOError):
        storage.stream_read_file(path)
    with pytest.raises(IOError):
        list(storage.stream_read(path))
    with pytest.raises(IOError):
        storage.get_checksum(path)
    assert not storage.exists(path)


@pytest.mark.parametrize("kind", ["plain", "blob"])
def test_stream_read_yields_the_bytes_in_buffer_size_pieces(
    storage: OciStoreStorage, kind: str
) -> None:
    data = pattern(100_003, seed=2)
    path = "files/big" if kind == "plain" else blob_path(data)
    storage.put_content(path, data)
    storage.buffer_size = 4096
    chunks = list(storage.stream_read(path))
    assert b"".join(chunks) == data
    assert len(chunks) == 25 and all(len(c) <= 4096 for c in chunks)


@pytest.mark.parametrize("kind", ["plain", "blob"])
def test_stream_read_file_is_a_seekable_file(storage: OciStoreStorage, kind: str) -> None:
    data = pattern(10_000, seed=3)
    path = "files/f" if kind == "plain" else blob_path(data)
    storage.put_content(path, data)
    with storage.stream_read_file(path) as f:
        assert f.read(10) == data[:10]
        f.seek(-5, 2)
        assert f.read() == data[-5:]


@pytest.mark.parametrize("kind", ["plain", "blob"])
def test_stream_write_from_a_file_object(storage: OciStoreStorage, root: Path, kind: str) -> None:
    data = pattern(9_000_001, seed=4)  # more than one read block
    path = "files/streamed" if kind == "plain" else blob_path(data)
    storage.stream_write(path, io.BytesIO(data), content_type="application/octet-stream")
    assert storage.get_content(path) == data
    if kind == "blob":
        assert layout_path(root, data).read_bytes() == data
    assert uploads(root) == []  # no upload left behind
    if kind == "plain":
        assert os.listdir(root / "quay/files") == ["streamed"]  # no temporary file left


def test_failed_stream_write_leaves_nothing(storage: OciStoreStorage, root: Path) -> None:
    data = pattern(5000, seed=5)
    with pytest.raises(ConnectionResetError):
        storage.stream_write(blob_path(data), Failing(data))
    assert not storage.exists(blob_path(data))
    assert uploads(root) == []
    with pytest.raises(ConnectionResetError):
        storage.stream_write("files/partial", Failing(data))
    assert not storage.exists("files/partial")
    assert os.listdir(root / "quay/files") == []


@pytest.mark.parametrize("kind", ["plain", "blob"])
def test_get_checksum_is_the_first_seven_hex_of_the_sha256(
    storage: OciStoreStorage, kind: str
) -> None:
    data = pattern(70_000, seed=6)
    path = "files/c" if kind == "plain" else blob_path(data)
    storage.put_content(path, data)
    assert storage.get_checksum(path) == hashlib.sha256(data).hexdigest()[:7]


def test_small_methods_quay_callers_use(storage: OciStoreStorage, root: Path) -> None:
    storage.setup()
    assert storage.get_direct_download_url(blob_path(b"x"), "10.0.0.1", expires_in=60) is None
    assert storage.get_direct_upload_url("files/x", "text/plain") is None
    assert storage.get_supports_resumable_downloads() is False
    storage.validate(None)
    assert (root / "quay/_verify").read_bytes() == b"testing 123"


def test_copy_to_another_engine(storage: OciStoreStorage, tmp_path: Path) -> None:
    other = OciStoreStorage(None, str(tmp_path / "other"))
    data = pattern(1000, seed=7)
    storage.put_content(blob_path(data), data)
    storage.put_content("files/x", b"plain")
    storage.copy_to(other, blob_path(data))
    storage.copy_to(other, "files/x")
    assert other.get_content(blob_path(data)) == data
    assert other.get_content("files/x") == b"plain"


@pytest.mark.parametrize(
    "path", ["../escape", "/etc/passwd", "a/../../escape", "a/..", "", "/", "a/\0b", "."]
)
def test_path_traversal_is_rejected(storage: OciStoreStorage, tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidStoragePath):
        storage.put_content(path, b"x")
    with pytest.raises(InvalidStoragePath):
        storage.stream_write(path, io.BytesIO(b"x"))
    with pytest.raises(InvalidStoragePath):
        storage.get_content(path)
    with pytest.raises(InvalidStoragePath):
        storage.exists(path)
    with pytest.raises(InvalidStoragePath):
        storage.remove(path)
    assert isinstance(InvalidStoragePath(), ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created anywhere


# -- chunked uploads -------------------------------------------------------------------------


def test_initiate_returns_uuid_and_json_metadata(storage: OciStoreStorage, root: Path) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    assert uploads(root) == [upload_id]
    assert through_db(metadata) == metadata
    assert all(isinstance(v, str | int) for v in metadata.values())
    other_id, _ = storage.initiate_chunked_upload()
    assert other_id != upload_id


def test_chunked_upload_in_several_chunks(storage: OciStoreStorage, root: Path) -> None:
    data = pattern(3_000_000, seed=8)
    cuts = [0, 1, 65, 1_000_000, 2_345_678, len(data)]
    upload_id, metadata = storage.initiate_chunked_upload()
    for start, end in itertools.pairwise(cuts):
        length = READ_UNTIL_END if end == len(data) else end - start
        written, metadata, error = storage.stream_upload_chunk(
            upload_id,
            start,
            length,
            io.BytesIO(data[start:end]),
            through_db(metadata),
            content_type="application/octet-stream",
        )
        assert error is None
        assert written == end - start
        assert metadata["size"] == end
    storage.complete_chunked_upload(upload_id, blob_path(data), through_db(metadata))
    assert layout_path(root, data).read_bytes() == data
    assert storage.get_content(blob_path(data)) == data
    assert uploads(root) == []


def test_chunk_length_bounds_what_is_read(storage: OciStoreStorage) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    source = io.BytesIO(b"0123456789")
    written, metadata, error = storage.stream_upload_chunk(upload_id, 0, 4, source, metadata)
    assert (written, error, source.tell()) == (4, None, 4)
    # A length past the end of the stream writes what there is.
    written, metadata, error = storage.stream_upload_chunk(
        upload_id, 4, 100, io.BytesIO(b"45"), metadata
    )
    assert (written, error) == (2, None)
    written, metadata, error = storage.stream_upload_chunk(
        upload_id, 6, 0, io.BytesIO(b"ignored"), metadata
    )
    assert (written, error) == (0, None)
    storage.complete_chunked_upload(upload_id, blob_path(b"012345"), metadata)
    assert storage.get_content(blob_path(b"012345")) == b"012345"


def test_offset_that_does_not_match_is_an_error(storage: OciStoreStorage) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abcdef"), metadata)
    for offset in (3, 7):
        written, returned, error = storage.stream_upload_chunk(
            upload_id, offset, -1, io.BytesIO(b"XYZ"), metadata
        )
        assert written == 0
        assert isinstance(error, ErrBlobUploadInvalid)
        assert returned == metadata
    storage.complete_chunked_upload(upload_id, blob_path(b"abcdef"), metadata)


def test_offset_zero_appends_as_quays_blob_uploader_expects(storage: OciStoreStorage) -> None:
    # blobuploader passes start_offset 0 for a request without Content-Range and feeds the
    # bytes to its running sha256 as an append.
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abc"), metadata)
    written, metadata, error = storage.stream_upload_chunk(
        upload_id, 0, -1, io.BytesIO(b"def"), metadata
    )
    assert (written, error, metadata["size"]) == (3, None, 6)
    storage.complete_chunked_upload(upload_id, blob_path(b"abcdef"), metadata)


def test_resume_with_only_the_metadata_in_a_new_instance(root: Path) -> None:
    data = pattern(2_000_000, seed=9)
    first = OciStoreStorage(None, str(root))
    upload_id, metadata = first.initiate_chunked_upload()
    _, metadata, _ = first.stream_upload_chunk(
        upload_id, 0, -1, io.BytesIO(data[:700_000]), metadata
    )
    second = OciStoreStorage(None, str(root))
    written, metadata, error = second.stream_upload_chunk(
        upload_id, 700_000, -1, io.BytesIO(data[700_000:]), through_db(metadata)
    )
    assert (written, error) == (1_300_000, None)
    OciStoreStorage(None, str(root)).complete_chunked_upload(
        upload_id, blob_path(data), through_db(metadata)
    )
    assert layout_path(root, data).read_bytes() == data


def test_resume_in_another_process(storage: OciStoreStorage, root: Path) -> None:
    data = pattern(1_500_000, seed=10)
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(
        upload_id, 0, -1, io.BytesIO(data[:500_000]), metadata
    )
    out = run_python(
        """
        import io, json, sys
        from ocistore.adapters import OciStoreStorage
        from tests.helpers import pattern
        root, upload_id, metadata = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        rest = pattern(1_500_000, seed=10)[500_000:]
        storage = OciStoreStorage(None, root)
        written, metadata, error = storage.stream_upload_chunk(
            upload_id, 500_000, -1, io.BytesIO(rest), metadata
        )
        assert error is None, error
        print(json.dumps(metadata))
        """,
        str(root),
        upload_id,
        json.dumps(metadata),
    )
    metadata = json.loads(out.stdout)
    assert metadata["size"] == len(data)
    storage.complete_chunked_upload(upload_id, blob_path(data), metadata)
    assert storage.get_content(blob_path(data)) == data


def test_failed_chunk_is_rolled_back_to_the_metadata_quay_kept(
    storage: OciStoreStorage, root: Path
) -> None:
    upload_id, kept = storage.initiate_chunked_upload()
    _, kept, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"first "), kept)
    written, discarded, error = storage.stream_upload_chunk(
        upload_id, 6, -1, Failing(b"GARBAGE"), kept
    )
    assert isinstance(error, ConnectionResetError)
    assert written == 7 and discarded["size"] == 13  # what reached the disk
    # Quay raises on the error and keeps its previous metadata; the retry starts from there.
    written, metadata, error = storage.stream_upload_chunk(
        upload_id, 6, -1, io.BytesIO(b"second, longer than the garbage"), through_db(kept)
    )
    assert (written, error) == (31, None)
    # No state of the discarded bytes is left: one past the cut (13) would be taken for valid
    # after a crash once the data had grown past it.
    states = root / "docker/registry/v2/_uploads" / upload_id / "hashstates/sha256"
    assert {name for name in os.listdir(states) if int(name) > 6} == {"37"}
    content = b"first second, longer than the garbage"
    storage.complete_chunked_upload(upload_id, blob_path(content), metadata)
    assert storage.get_content(blob_path(content)) == content


def test_metadata_that_disagrees_with_the_upload_is_an_error(storage: OciStoreStorage) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abc"), metadata)
    other_id, other = storage.initiate_chunked_upload()
    _, other, _ = storage.stream_upload_chunk(other_id, 0, -1, io.BytesIO(b"xyz"), other)
    forged = {**metadata, "hashstate": other["hashstate"]}  # same size, other bytes
    cases: list[Any] = [
        forged,
        other,  # another upload's metadata
        {},
        {**metadata, "size": 4},
        {**metadata, "hashstate": "not hex"},
        {**metadata, "ocistore": 99},
    ]
    for bad in cases:
        written, _, error = storage.stream_upload_chunk(upload_id, 3, -1, io.BytesIO(b"def"), bad)
        assert written == 0
        assert isinstance(error, ErrBlobUploadInvalid), bad
    with pytest.raises(ErrBlobUploadInvalid):
        storage.complete_chunked_upload(upload_id, blob_path(b"abc"), forged)
    storage.complete_chunked_upload(upload_id, blob_path(b"abc"), metadata)


def test_metadata_ahead_of_the_disk_is_an_error(storage: OciStoreStorage, root: Path) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abcd"), metadata)
    (root / "docker/registry/v2/_uploads" / upload_id / "data").write_bytes(b"ab")
    written, _, error = storage.stream_upload_chunk(upload_id, 4, -1, io.BytesIO(b"e"), metadata)
    assert written == 0 and isinstance(error, ErrBlobUploadInvalid)
    assert "fewer than" in str(error)


def test_complete_with_the_wrong_digest_stores_nothing(
    storage: OciStoreStorage, root: Path
) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abc"), metadata)
    with pytest.raises(ErrBlobInvalidDigest):
        storage.complete_chunked_upload(upload_id, blob_path(b"abd"), metadata)
    assert not storage.exists(blob_path(b"abd"))
    assert not storage.exists(blob_path(b"abc"))
    assert uploads(root) == [upload_id]
    storage.cancel_chunked_upload(upload_id, metadata)
    assert uploads(root) == []


def test_complete_when_the_blob_is_already_stored(storage: OciStoreStorage, root: Path) -> None:
    storage.put_content(blob_path(b"same"), b"same")
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"same"), metadata)
    storage.complete_chunked_upload(upload_id, blob_path(b"same"), metadata)
    assert storage.get_content(blob_path(b"same")) == b"same"
    assert uploads(root) == []


def test_complete_to_a_plain_path(storage: OciStoreStorage, root: Path) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"layer"), metadata)
    storage.complete_chunked_upload(upload_id, "sharedimages/u1/layer", metadata)
    assert storage.get_content("sharedimages/u1/layer") == b"layer"
    assert uploads(root) == []
    with pytest.raises(InvalidStoragePath):
        storage.complete_chunked_upload(upload_id, "../outside", metadata)


def test_cancel_removes_the_upload(storage: OciStoreStorage, root: Path) -> None:
    upload_id, metadata = storage.initiate_chunked_upload()
    _, metadata, _ = storage.stream_upload_chunk(upload_id, 0, -1, io.BytesIO(b"abc"), metadata)
    storage.cancel_chunked_upload(upload_id, metadata)
    assert uploads(root) == []
    storage.cancel_chunked_upload(upload_id, metadata)  # already gone: fine
    written, _, error = storage.stream_upload_chunk(upload_id, 3, -1, io.BytesIO(b"d"), metadata)
    assert written == 0 and isinstance(error, ErrBlobUploadUnknown)
    with pytest.raises(ErrBlobUploadUnknown):
        storage.complete_chunked_upload(upload_id, blob_path(b"abc"), metadata)


@pytest.mark.parametrize("bad_id", ["../../escape", "", "not-a-uuid", "/tmp"])
def test_upload_ids_cannot_name_paths(
    storage: OciStoreStorage, tmp_path: Path, bad_id: str
) -> None:
    _, metadata = storage.initiate_chunked_upload()
    forged = {**metadata, "upload": bad_id}
    written, _, error = storage.stream_upload_chunk(bad_id, 0, -1, io.BytesIO(b"x"), forged)
    assert written == 0 and isinstance(error, ErrBlobUploadUnknown)
    with pytest.raises(ErrBlobUploadUnknown):
        storage.cancel_chunked_upload(bad_id, forged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage"]


def test_clean_partial_uploads_by_age(storage: OciStoreStorage, root: Path) -> None:
    upload_id, _ = storage.initiate_chunked_upload()
    storage.clean_partial_uploads(timedelta(days=1))
    assert uploads(root) == [upload_id]
    storage.clean_partial_uploads(timedelta(0))
    assert uploads(root) == []
