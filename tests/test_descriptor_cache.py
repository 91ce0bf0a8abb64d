"""The blob descriptor cache (``storage.cache.blobdescriptor``): in memory and in a real
redis-server, and two instances on one SeaweedFS bucket sharing one redis: a blob deleted on one
is gone on the other at once."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from ocistore import Registry
from ocistore._core import Digest, Layout
from ocistore.descriptor import Descriptor
from ocistore.errors import ErrBlobUnknown, ErrManifestUnknownRevision
from ocistore.interfaces import BlobDescriptorService
from ocistore.server.config import ConfigError, load_config
from ocistore.storage.descriptor_cache import (
    DescriptorCache,
    MemoryDescriptorCache,
    RedisDescriptorCache,
)

from .images import digest_of
from .redis_server import redis_server
from .seaweedfs import SeaweedFS
from .servers import ocistore_server

A, B = Digest(digest_of(b"a")), Digest(digest_of(b"b"))


@pytest.fixture(scope="module")
def redis_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as addr:
        yield addr


def redis_client(addr: str, db: int = 0) -> redis.Redis:
    host, _, port = addr.rpartition(":")
    return redis.Redis(host=host, port=int(port), db=db)


@pytest.fixture(params=["inmemory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[DescriptorCache]:
    if request.param == "inmemory":
        yield MemoryDescriptorCache(10)
        return
    client = redis_client(request.getfixturevalue("redis_addr"))
    client.flushdb()
    yield RedisDescriptorCache(client)
    client.close()


def test_entries_are_per_repository_and_go_with_the_link_or_the_blob(
    cache: DescriptorCache,
) -> None:
    assert cache.get("r/one", A) is None
    cache.put("r/one", A, (A, 1))
    cache.put("r/two", A, (A, 1))
    cache.put("r/one", B, (B, 2))
    assert cache.get("r/one", A) == (A, 1) and cache.get("r/three", A) is None
    cache.forget("r/one", A)
    assert cache.get("r/one", A) is None and cache.get("r/two", A) == (A, 1)
    cache.forget_blob(A)  # every repository's entry for it
    assert cache.get("r/two", A) is None and cache.get("r/one", B) == (B, 2)


def test_the_memory_cache_drops_the_least_recently_used() -> None:
    cache = MemoryDescriptorCache(2)
    cache.put("r", A, (A, 1))
    cache.put("r", B, (B, 2))
    assert cache.get("r", A) == (A, 1)  # used: B is now the oldest
    c = Digest(digest_of(b"c"))
    cache.put("r", c, (c, 3))
    assert cache.get("r", B) is None and cache.get("r", A) == (A, 1)
    with pytest.raises(ValueError):
        MemoryDescriptorCache(0)


def test_redis_keys_follow_distributions(redis_addr: str) -> None:
    client = redis_client(redis_addr)
    client.flushdb()
    RedisDescriptorCache(client).put("lib/app", A, (A, 1))
    assert client.hget(f"blobs::{A}", "size") == b"1"
    assert client.hget(f"repository::lib/app::blobs::{A}", "digest") == str(A).encode()
    assert client.sismember("repository::lib/app::blobs", str(A))


def test_lookups_use_and_fill_the_cache(tmp_path: Path) -> None:
    cache = MemoryDescriptorCache()
    registry = Registry(tmp_path / "root", descriptor_cache=cache)
    blobs = registry.repository("c/app").blobs()
    digest = blobs.put("application/octet-stream", b"cached").digest
    assert cache.get("c/app", digest) is None
    assert blobs.lookup(digest) == (digest, 6)
    assert cache.get("c/app", digest) == (digest, 6)
    blobs.delete(digest)
    assert cache.get("c/app", digest) is None


class Counting:
    """Middleware (a ``BlobDescriptorServiceFactory``) counting what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def blob_access_controller(self, service: BlobDescriptorService) -> BlobDescriptorService:
        factory = self

        class Counted:
            def stat(self, digest: Digest | str) -> Descriptor:
                factory.calls.append(("stat", str(digest)))
                return service.stat(digest)

            def set_descriptor(self, digest: Digest | str, descriptor: Descriptor) -> None:
                factory.calls.append(("set", str(digest)))
                service.set_descriptor(digest, descriptor)

            def clear(self, digest: Digest | str) -> None:
                factory.calls.append(("clear", str(digest)))
                service.clear(digest)

        return Counted()


def test_the_cache_is_middleware_of_each_repositorys_blob_access_controller(
    tmp_path: Path, cache: DescriptorCache
) -> None:
    # As distribution builds a repository's blobs: the linked blob statter, the cache before it
    # (scoped to the repository), the registry's BlobDescriptorServiceFactory before both.
    counting = Counting()
    registry = Registry(
        tmp_path / "root", descriptor_cache=cache, blob_descriptor_service_factory=counting
    )
    blobs = registry.repository("mw/app").blobs()
    data = b"bytes pushed by their sha512 digest"
    sha512 = Digest("sha512:" + hashlib.sha512(data).hexdigest())
    stored = Digest(digest_of(data))
    blobs.put("application/octet-stream", data, algorithm="sha512")
    # The descriptor names the bytes as stored (as distribution's linked statter does).
    assert blobs.lookup(sha512) == (stored, len(data))
    assert cache.get("mw/app", sha512) == (stored, len(data))
    assert cache.repository_scoped("mw/app").stat(sha512).digest == stored
    assert cache.get("mw/other", sha512) is None  # another repository's scope
    # Served from the cache now: the link can go behind its back and the lookup still answers.
    link = tmp_path / "root" / Layout.layer_link("mw/app", sha512)
    link.rename(link.with_name("moved"))
    assert blobs.lookup(sha512) == (stored, len(data))
    link.with_name("moved").rename(link)
    blobs.delete(sha512)  # through the middleware and the cache, then the link
    assert cache.get("mw/app", sha512) is None
    assert counting.calls == [("stat", str(sha512))] * 2 + [("clear", str(sha512))]
    with pytest.raises(ErrBlobUnknown):
        blobs.lookup(sha512)


def test_manifest_revisions_are_cached_and_forgotten_when_deleted(tmp_path: Path) -> None:
    from .images import make_image, push

    cache = MemoryDescriptorCache()
    registry = Registry(tmp_path / "root", descriptor_cache=cache)
    repo = registry.repository("c/app")
    image = make_image(3)
    digest = Digest(push(repo, image, "v1"))
    assert repo.manifests().get(digest).payload() == image.manifest
    assert cache.get("c/app/_manifests", digest) == (digest, len(image.manifest))
    # Served from the cache now, without the revision link.
    link = tmp_path / "root" / Layout.revision_link("c/app", digest)
    link.rename(link.with_name("moved"))
    assert repo.manifests().get(digest).payload() == image.manifest
    link.with_name("moved").rename(link)
    repo.manifests().delete(digest)
    assert cache.get("c/app/_manifests", digest) is None
    with pytest.raises(ErrManifestUnknownRevision):
        repo.manifests().get(digest)


def test_a_blob_deleted_on_one_instance_is_gone_on_the_other_at_once(
    seaweedfs: SeaweedFS, redis_addr: str, tmp_path: Path
) -> None:
    section = {
        "storage": {
            "s3": seaweedfs.storage_s3(seaweedfs.bucket()),
            "redirect": {"disable": True},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "redis"},
        },
        "redis": {"addr": redis_addr, "db": 1},
    }
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(section))
    extra = ["--config", str(config)]
    data = b"shared through one bucket"
    digest = digest_of(data)
    with (
        ocistore_server(tmp_path / "a", extra=extra) as a,
        ocistore_server(tmp_path / "b", extra=extra) as b,
        a.client() as on_a,
        b.client() as on_b,
    ):
        r = on_a.post("/v2/fleet/app/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201
        for _ in range(2):  # the second answered from the cache
            r = on_b.head(f"/v2/fleet/app/blobs/{digest}")
            assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
        # Cached in the db configured (1), not elsewhere.
        key = f"repository::fleet/app::blobs::{digest}"
        assert redis_client(redis_addr).exists(key) == 0
        assert redis_client(redis_addr, db=1).exists(key) == 1
        assert on_a.delete(f"/v2/fleet/app/blobs/{digest}").status_code == 202
        assert redis_client(redis_addr, db=1).exists(key) == 0
        r = on_b.head(f"/v2/fleet/app/blobs/{digest}")
        assert r.status_code == 404
        assert on_b.get(f"/v2/fleet/app/blobs/{digest}").status_code == 404

        # The collector, run anywhere with the configuration, clears what it collects for
        # every instance too.
        orphan = b"referenced by no manifest"
        r = on_a.post("/v2/fleet/gc/blobs/uploads/", params={"digest": digest_of(orphan)},
                      content=orphan)  # fmt: skip
        assert r.status_code == 201
        assert on_b.head(f"/v2/fleet/gc/blobs/{digest_of(orphan)}").status_code == 200
        key = f"repository::fleet/gc::blobs::{digest_of(orphan)}"
        assert redis_client(redis_addr, db=1).exists(key) == 1
        # Older than --min-age 1s, the collector's slack (1 s) and the store's one-second
        # timestamps.
        time.sleep(3.2)
        collected = subprocess.run(
            [sys.executable, "-m", "ocistore.cli", "gc", "--config", str(config),
             "--min-age", "1s"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert collected.returncode == 0, collected.stderr
        assert f"deleting blob {digest_of(orphan)}" in collected.stdout
        assert redis_client(redis_addr, db=1).exists(key) == 0
        assert on_b.head(f"/v2/fleet/gc/blobs/{digest_of(orphan)}").status_code == 404


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"storage": {"cache": {"blobdescriptor": "memcached"}}}, "expected inmemory or redis"),
        ({"storage": {"cache": {"blobdescriptor": "redis"}}}, "redis needs redis.addr"),
        (
            {"storage": {"cache": {"blobdescriptor": "redis"}}, "redis": {"addr": "nowhere"}},
            "redis.addr",
        ),
        (
            {"storage": {"cache": {"blobdescriptor": "inmemory", "blobdescriptorsize": "0"}}},
            "blobdescriptorsize",
        ),
    ],
)
def test_cache_configuration_errors(tmp_path: Path, section: dict, message: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(section))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_redis_configuration_as_distribution_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"cache": {"blobdescriptor": "redis"}},
                "redis": {
                    "addrs": ["127.0.0.1:6390"],
                    "password": "pw",
                    "db": 2,
                    "dialtimeout": "10ms",
                    "pool": {"maxactive": 8},
                },
            }
        )
    )
    config = load_config(path)
    assert config.redis == {
        "addr": "127.0.0.1:6390", "password": "pw", "db": 2, "dialtimeout": 0.01, "maxactive": 8,
    }  # fmt: skip
    assert isinstance(config.descriptor_cache(), RedisDescriptorCache)
