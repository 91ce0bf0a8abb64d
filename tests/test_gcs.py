"""Google Cloud Storage (``ObjectStore.gcs``, ``storage.gcs``) against a real fake-gcs-server:
what differs from S3 and Azure. Writes go through the JSON API, versions are generations, and a
multipart upload is parts composed 32 at a time. The HTTP suite, the storage-driver tests and the
cross-instance tests run on GCS too (the ``storage``, ``backend`` and ``server`` fixtures)."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from ocistore import _core
from ocistore._core import Layout
from ocistore.errors import ErrBlobUploadInvalid, ErrBlobUploadUnknown
from ocistore.server.config import ConfigError, load_config
from ocistore.storage import Registry, purge_uploads
from ocistore.storage.driver import ObjectStoreDriver

from .conftest import gcs_store
from .fakegcs import FakeGcs

KiB = 1024
MiB = 1024 * KiB
UPLOADS = "docker/registry/v2/repositories/a/_uploads"
PARTS = "_ocistore_parts"


@pytest.fixture
def root() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(fakegcs: FakeGcs, gcs_bucket: str, root: str) -> _core.ObjectStore:
    """Parts of 256 KiB (GCS's unit), so that a few MiB make more parts than one compose takes."""
    return gcs_store(fakegcs, gcs_bucket, root, chunk_size=256 * KiB)


@pytest.fixture
def blobs(store: _core.ObjectStore) -> _core.Storage:
    return _core.Storage.on_object_store(store)


def data_of(size: int, seed: int = 11) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parts_left(fakegcs: FakeGcs, bucket: str, root: str) -> list[str]:
    return fakegcs.object_names(bucket, f"{root}/{PARTS}/")


def test_a_chunked_upload_of_many_parts_is_composed_in_order(
    blobs: _core.Storage, fakegcs: FakeGcs, gcs_bucket: str, root: str
) -> None:
    # 70 parts and a tail: three composes (32, then 31 more onto the scratch object, then the
    # last 7 and the tail into the target).
    data = data_of(70 * 256 * KiB + 12_345)
    w = blobs.create(uploads_dir=UPLOADS)
    for at in range(0, len(data), 999_999):
        w.write(data[at : at + 999_999])
    w.checkpoint()
    # The parts are objects of their own, outside distribution's tree, while the upload lasts.
    assert len(parts_left(fakegcs, gcs_bucket, root)) == 70
    assert w.commit(sha256(data), len(data)) == len(data)
    assert blobs.get(sha256(data)) == data
    assert blobs.stat(sha256(data)) == len(data)
    assert parts_left(fakegcs, gcs_bucket, root) == []


def test_a_blob_put_in_one_call_goes_up_in_parts_and_appears_whole(
    blobs: _core.Storage, store: _core.ObjectStore, fakegcs: FakeGcs, gcs_bucket: str, root: str
) -> None:
    data = data_of(40 * 256 * KiB + 7, seed=12)
    digest, size = blobs.put(data)
    assert (str(digest), size) == (sha256(data), len(data))
    assert blobs.get(digest) == data
    with blobs.open(digest) as reader:
        reader.seek(5 * MiB)
        assert reader.read(1000) == data[5 * MiB : 5 * MiB + 1000]
    assert parts_left(fakegcs, gcs_bucket, root) == []
    # Under the root directory: distribution's tree and nothing else.
    names = fakegcs.object_names(gcs_bucket, f"{root}/")
    assert names and all(n.startswith(f"{root}/docker/registry/v2/") for n in names)


def test_cancel_deletes_the_parts_too(
    blobs: _core.Storage, store: _core.ObjectStore, fakegcs: FakeGcs, gcs_bucket: str, root: str
) -> None:
    w = blobs.create(uploads_dir=UPLOADS)
    w.write(data_of(3 * MiB))
    w.checkpoint()
    assert len(parts_left(fakegcs, gcs_bucket, root)) == 12
    w.cancel()
    assert parts_left(fakegcs, gcs_bucket, root) == []
    assert store.walk(UPLOADS) == []
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.resume(w.id, UPLOADS)


def test_purging_an_abandoned_upload_deletes_its_parts(
    store: _core.ObjectStore, fakegcs: FakeGcs, gcs_bucket: str, root: str
) -> None:
    # The parts live outside the upload's keys: deleting the keys alone would leak them.
    registry = Registry(ObjectStoreDriver(store))
    abandoned = registry.repository("a").blobs().create()
    abandoned.write(data_of(MiB + 5))
    abandoned.close()
    assert len(parts_left(fakegcs, gcs_bucket, root)) == 4
    assert purge_uploads(registry, older_than=timedelta(0), dry_run=True)
    assert len(parts_left(fakegcs, gcs_bucket, root)) == 4
    purged = purge_uploads(registry, older_than=timedelta(0))
    assert purged == [f"{Layout.uploads('a')}/{abandoned.id}"]
    assert parts_left(fakegcs, gcs_bucket, root) == []
    assert fakegcs.object_names(gcs_bucket, f"{root}/") == []


def test_a_stale_writer_loses_even_when_the_state_it_saw_is_rewritten_identically(
    blobs: _core.Storage, store: _core.ObjectStore
) -> None:
    # GCS's ETag is the bytes' MD5: the same state written again keeps it. The generation
    # changes, and that is what the conditional writes compare.
    data = data_of(2 * MiB, seed=13)
    stale = blobs.create(uploads_dir=UPLOADS)
    stale.write(data[:MiB])
    stale.checkpoint()
    state = f"{UPLOADS}/{stale.id}/ocistore-upload.json"
    saved = store.read(state)
    assert saved is not None
    store.write(state, saved)  # another process saved the same state again
    stale.write(data[MiB:])
    with pytest.raises(ErrBlobUploadInvalid):
        stale.checkpoint()
    current = blobs.resume(stale.id, UPLOADS)
    assert current.size == MiB
    current.write(data[MiB:])
    assert current.commit(sha256(data)) == len(data)
    assert blobs.get(sha256(data)) == data


def test_presigned_urls_serve_the_object(store: _core.ObjectStore) -> None:
    import urllib.request

    store.write("docker/x", b"signed bytes")
    url = store.signed_url("docker/x", 60)
    assert "X-Goog-Signature=" in url and "X-Goog-Algorithm=GOOG4-RSA-SHA256" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"signed bytes"


def test_settings_are_checked(fakegcs: FakeGcs, gcs_bucket: str) -> None:
    endpoint = fakegcs.endpoint
    with pytest.raises(ValueError, match="multiple of 262144"):
        _core.ObjectStore.gcs(gcs_bucket, chunk_size=300 * KiB, endpoint=endpoint)
    with pytest.raises(ValueError, match="give one"):
        _core.ObjectStore.gcs(gcs_bucket, keyfile="/k.json", credentials="{}", endpoint=endpoint)
    with pytest.raises(ValueError, match="http:// or https://"):
        _core.ObjectStore.gcs(gcs_bucket, endpoint="127.0.0.1:1")
    with pytest.raises(ValueError, match="invalid GCS bucket"):
        _core.ObjectStore.gcs("a/b", endpoint=endpoint)
    with pytest.raises(ValueError, match="invalid GCS configuration"):
        _core.ObjectStore.gcs(gcs_bucket, credentials='{"not": "a key"}', endpoint=endpoint)
    store = _core.ObjectStore.gcs(
        gcs_bucket, keyfile=str(fakegcs.keyfile), endpoint=endpoint + "/", root_directory="/r/"
    )
    assert (store.url, store.root_directory, store.chunk_size) == (
        f"gs://{gcs_bucket}/r",
        "r",
        16 * MiB,
    )


def test_server_configuration_names_distributions_keys(
    fakegcs: FakeGcs, gcs_bucket: str, tmp_path: Path
) -> None:
    def load(section: dict[str, object]) -> object:
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump({"version": "0.1", "storage": {"gcs": section}}))
        return load_config(path)

    # distribution's ``credentials`` map is the key file's contents: the same store.
    key = json.loads(fakegcs.keyfile.read_text())
    section = {**fakegcs.storage_gcs(gcs_bucket, "/inline"), "chunksize": str(512 * KiB)}
    del section["keyfile"]
    section["credentials"] = key
    config = load(section)
    driver = config.storage_driver()  # type: ignore[attr-defined]
    assert config.object_storage()  # type: ignore[attr-defined]
    assert config.gcs["chunk_size"] == 512 * KiB  # type: ignore[attr-defined]
    assert driver.url == f"gs://{gcs_bucket}/inline"
    for bad, message in [
        ({"keyfile": str(fakegcs.keyfile)}, "storage.gcs.bucket is required"),
        ({"bucket": gcs_bucket, "chunksize": "1000"}, "storage.gcs.chunksize"),
        ({"bucket": gcs_bucket, "keyfile": str(tmp_path / "absent.json")}, "storage.gcs"),
        ({"bucket": gcs_bucket, "region": "x"}, "storage.gcs.region"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(bad)
