from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocistore import BlobStore, _core
from ocistore.storage.driver import FilesystemDriver, ObjectStoreDriver

from .azurite import ACCOUNT, KEY, Azurite
from .azurite import azurite as run_azurite
from .fakegcs import FakeGcs, fake_gcs
from .helpers import pattern
from .object_stores import Backend, s3_backend
from .seaweedfs import SeaweedFS
from .seaweedfs import seaweedfs as run_seaweedfs

__all__ = ["pattern", "run_python"]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the whole session, started the first time a test asks for it
    (weed uses fixed ports, so there can be only one). Give each test its own bucket:
    ``seaweedfs.bucket()``."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "root")


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (a different process from the test's)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """One bucket for the tests that run on both backends; each test takes its own root
    directory in it."""
    return seaweedfs.bucket()


def object_store(weed: SeaweedFS, bucket: str, root_directory: str) -> _core.ObjectStore:
    options = weed.storage_s3(bucket)
    return _core.ObjectStore(
        bucket,
        region=options["region"],
        endpoint=options["regionendpoint"],
        access_key=options["accesskey"],
        secret_key=options["secretkey"],
        root_directory=root_directory,
    )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite blob service for the session; give each test its own container or root."""
    with run_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def azure_container(azurite: Azurite) -> str:
    return azurite.container()


def azure_store(server: Azurite, container: str, root_directory: str) -> _core.ObjectStore:
    return _core.ObjectStore.azure(
        ACCOUNT, KEY, container, service_url=server.service_url, root_directory=root_directory
    )


@pytest.fixture(scope="session")
def fakegcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """One fake-gcs-server for the session; give each test its own bucket or root."""
    with fake_gcs(tmp_path_factory.mktemp("fakegcs")) as server:
        yield server


@pytest.fixture(scope="session")
def gcs_bucket(fakegcs: FakeGcs) -> str:
    return fakegcs.bucket()


def gcs_store(
    server: FakeGcs, bucket: str, root_directory: str, chunk_size: int = 16 * 1024 * 1024
) -> _core.ObjectStore:
    return _core.ObjectStore.gcs(
        bucket,
        keyfile=str(server.keyfile),
        endpoint=server.endpoint,
        root_directory=root_directory,
        chunk_size=chunk_size,
    )


@pytest.fixture(params=["filesystem", "s3", "azure", "gcs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FilesystemDriver | ObjectStoreDriver:
    """The storage driver a test runs on: a directory, or a fresh root directory in SeaweedFS
    (S3), Azurite (Azure) or fake-gcs-server (GCS)."""
    if request.param == "filesystem":
        return FilesystemDriver(tmp_path / "root")
    if request.param == "gcs":
        server = request.getfixturevalue("fakegcs")
        bucket = request.getfixturevalue("gcs_bucket")
        return ObjectStoreDriver(gcs_store(server, bucket, f"t-{uuid.uuid4().hex}"))
    if request.param == "azure":
        server = request.getfixturevalue("azurite")
        container = request.getfixturevalue("azure_container")
        return ObjectStoreDriver(azure_store(server, container, f"t-{uuid.uuid4().hex}"))
    weed = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("s3_bucket")
    return ObjectStoreDriver(object_store(weed, bucket, f"t-{uuid.uuid4().hex}"))


@pytest.fixture(params=["s3", "azure", "gcs"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """SeaweedFS (S3), Azurite (Azure) or fake-gcs-server (GCS): the cross-instance tests run
    servers on each, each in a root directory of its own."""
    if request.param == "s3":
        weed = request.getfixturevalue("seaweedfs")
        return s3_backend(weed, request.getfixturevalue("s3_bucket"))
    if request.param == "gcs":
        gcs: FakeGcs = request.getfixturevalue("fakegcs")
        bucket = request.getfixturevalue("gcs_bucket")
        return Backend("gcs", lambda root: {"gcs": gcs.storage_gcs(bucket, root)}, gcs.endpoint)
    emulator: Azurite = request.getfixturevalue("azurite")
    container = request.getfixturevalue("azure_container")
    return Backend(
        "azure", lambda root: {"azure": emulator.storage_azure(container, root)},
        emulator.service_url,
    )  # fmt: skip
