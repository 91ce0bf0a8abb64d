"""The implementations of ``ocistore.interfaces`` at work, used through the protocols: blobs,
options, manifests and tags, the namespace, descriptor services, builders and the ASGI blob
server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ocistore import (
    BlobStore,
    Descriptor,
    Digest,
    Platform,
    errors,
    interfaces,
    unmarshal_manifest,
)
from ocistore.blob_server import BLOCK, serve_blob
from ocistore.errors import (
    ErrBlobInvalidLength,
    ErrBlobMounted,
    ErrBlobUnknown,
    ErrDescriptorInvalid,
    ErrManifestBlobUnknown,
    ErrManifestInvalid,
    ErrManifestUnknownRevision,
    ErrManifestVerification,
    ErrRepositoryUnknown,
    ErrTagUnknown,
    ErrUnsupported,
)
from ocistore.interfaces import (
    GlobalScope,
    WithAlgorithm,
    WithManifestMediaTypes,
    WithMountFrom,
    WithTag,
)
from ocistore.server.http import error_response
from ocistore.storage import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    GLOBAL_SCOPE,
    OCI_INDEX,
    OCI_MANIFEST,
    CachedBlobDescriptorService,
    DescriptorCacheFactory,
    ImageIndex,
    ImageManifest,
    IndexBuilder,
    LinkedBlobStatter,
    ManifestBuilder,
    MemoryBlobDescriptorCache,
    Registry,
)
from ocistore.storage.driver import FilesystemDriver, ObjectStoreDriver

from .helpers import pattern
from .images import CONFIG, LAYER, digest_of, make_image, push

EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "root")


# Errors

#: Every error distribution's package declares (the seed's list).
SEED_ERRORS = [
    "ErrAccessDenied",
    "ErrBlobDigestUnsupported",
    "ErrBlobExists",
    "ErrBlobInvalidDigest",
    "ErrBlobInvalidLength",
    "ErrBlobMounted",
    "ErrBlobUnknown",
    "ErrBlobUploadUnknown",
    "ErrManifestBlobUnknown",
    "ErrManifestNameInvalid",
    "ErrManifestNotModified",
    "ErrManifestUnknown",
    "ErrManifestUnknownRevision",
    "ErrManifestUnverified",
    "ErrManifestVerification",
    "ErrRepositoryNameInvalid",
    "ErrRepositoryUnknown",
    "ErrSchemaV1Unsupported",
    "ErrTagUnknown",
    "ErrUnsupported",
]


def test_every_seed_error_has_a_class() -> None:
    for name in SEED_ERRORS:
        assert name in errors.__all__, name
        assert issubclass(getattr(errors, name), errors.OciStoreError), name
    # The ones added for the seed answer as distribution does.
    for error, status, code in [
        (errors.ErrBlobDigestUnsupported("sha384 is not taken"), 400, "BLOB_UPLOAD_INVALID"),
        (errors.ErrManifestUnverified("unverified"), 400, "MANIFEST_UNVERIFIED"),
    ]:
        response = error_response(error)
        assert response.status == status
        assert json.loads(response.body)["errors"][0]["code"] == code
    # Outcomes rather than failures: no error code, a success or not-modified status.
    desc = Descriptor("x", Digest(digest_of(b"x")), 1)
    exists = errors.ErrBlobExists("stored", descriptor=desc)
    assert (exists.code, exists.status, exists.descriptor) == ("", 201, desc)
    assert (errors.ErrManifestNotModified.code, errors.ErrManifestNotModified.status) == ("", 304)


# Blobs and create options


def test_blob_store_through_the_protocol(tmp_path: Path) -> None:
    blobs: interfaces.BlobStore = BlobStore(tmp_path / "root")
    desc = blobs.put("application/vnd.oci.image.layer.v1.tar", b"hello, blobs")
    assert blobs.stat(desc.digest).size == 12
    assert blobs.get(desc.digest) == b"hello, blobs"
    with blobs.open(desc.digest) as reader:
        assert reader.read_at(7, 5) == b"blobs" and reader.read() == b"hello, blobs"
    assert list(blobs.enumerate()) == [desc.digest]
    blobs.delete(desc.digest)
    with pytest.raises(ErrBlobUnknown):
        blobs.stat(desc.digest)
    assert list(blobs.enumerate()) == []


def test_create_options_on_the_global_store(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    kept = store.put("x", b"already here")
    # The algorithm option wins over the keyword; a mount is ignored (an upload starts).
    writer = store.create(WithAlgorithm("sha512"), WithMountFrom(None, kept.digest))
    assert writer.algorithm == "sha512"
    writer.write(b"new")
    assert writer.commit(writer.digest()).digest.algorithm == "sha512"
    assert store.create(WithAlgorithm("blake3"), algorithm="sha512").algorithm == "blake3"
    assert store.create(algorithm="sha512").algorithm == "sha512"


def test_create_options_on_a_repository(registry: Registry) -> None:
    src = registry.repository("src").blobs()
    desc = src.put("x", b"shared layer")
    dst: interfaces.BlobIngester = registry.repository("dst").blobs()
    with pytest.raises(ErrBlobMounted) as mounted:
        dst.create(WithMountFrom("src", desc.digest))
    assert mounted.value.descriptor.digest == desc.digest
    assert registry.repository("dst").blobs().get(desc.digest) == b"shared layer"
    # The option overrides the keyword: here, a source that does not have the blob.
    upload = (
        registry.repository("third")
        .blobs()
        .create(WithMountFrom("nowhere", desc.digest), mount_from=("src", desc.digest))
    )
    assert upload.size == 0
    upload.cancel()
    with pytest.raises(ErrBlobUnknown):
        registry.repository("third").blobs().stat(desc.digest)
    writer = registry.repository("third").blobs().create(WithAlgorithm("sha512"))
    writer.write(b"sha512 bytes")
    stored = writer.commit(writer.digest())
    assert stored.digest.algorithm == "sha512"
    assert registry.repository("third").blobs().get(stored.digest) == b"sha512 bytes"


# Manifests, manifest options and tags


def test_manifest_service_with_options(registry: Registry) -> None:
    repo = registry.repository("app")
    image = make_image(1)
    for data in image.blobs.values():
        repo.blobs().put("application/octet-stream", data)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    manifests: interfaces.ManifestService = repo.manifests()
    digest = manifests.put(manifest, WithTag("v1"))
    assert str(digest) == image.digest
    assert repo.tags().resolve("v1") == digest
    assert manifests.exists(digest)
    got = manifests.get(digest, WithManifestMediaTypes([OCI_MANIFEST, OCI_INDEX]))
    assert got.payload() == image.manifest and got.media_type == OCI_MANIFEST
    with pytest.raises(ErrManifestUnknownRevision):
        manifests.get(digest, WithManifestMediaTypes([OCI_INDEX]))
    # The option wins over the keyword, whichever way round.
    with pytest.raises(ErrManifestUnknownRevision):
        repo.manifests().get(
            digest, WithManifestMediaTypes([OCI_INDEX]), media_types=[OCI_MANIFEST]
        )
    assert repo.manifests().get(digest, WithManifestMediaTypes([OCI_MANIFEST]), media_types=[])
    repo.manifests().put(manifest, WithTag("v2"), tag="ignored")
    assert repo.tags().all() == ["v1", "v2"]
    manifests.delete(digest)
    assert not manifests.exists(digest)
    assert repo.tags().all() == []


@dataclass
class ForeignManifest:
    """A manifest of another implementation than ocistore's: only what the protocol asks."""

    media_type: str
    raw: bytes
    refs: list[Descriptor] = field(default_factory=list)

    def references(self) -> list[Descriptor]:
        return self.refs

    def payload(self) -> bytes:
        return self.raw


def test_put_takes_any_manifest_and_verifies_it_as_pushed(registry: Registry) -> None:
    repo = registry.repository("app")
    image = make_image(2)
    foreign = ForeignManifest(OCI_MANIFEST, image.manifest)
    assert isinstance(foreign, interfaces.Manifest)
    # Its bytes are parsed: the layers they name are checked, whatever references() says.
    with pytest.raises(ErrManifestVerification):
        repo.manifests().put(foreign)
    for data in image.blobs.values():
        repo.blobs().put("application/octet-stream", data)
    digest = repo.manifests().put(foreign, WithTag("latest"))
    assert repo.manifests().get(digest).payload() == image.manifest
    assert str(repo.tags().get("latest").digest) == image.digest


def test_tag_service_through_the_protocol(registry: Registry) -> None:
    repo = registry.repository("app")
    first = push(repo, make_image(3))
    second = push(repo, make_image(4))
    tags: interfaces.TagService = repo.tags()
    target = repo.manifests().get(first).descriptor()
    tags.tag("a", target)
    tags.tag("b", target)
    tags.tag("c", repo.manifests().get(second).descriptor())
    assert tags.get("a") == target
    assert sorted(tags.all()) == ["a", "b", "c"]
    assert sorted(tags.lookup(target)) == ["a", "b"]
    tags.untag("a")
    assert tags.lookup(target) == ["b"]
    with pytest.raises(ErrTagUnknown):
        tags.get("a")


# The namespace


def test_namespace_scope_listing_and_removal(registry: Registry) -> None:
    for name in ("b", "a/b", "a"):
        push(registry.repository(name), make_image(5))
    namespace: interfaces.Namespace = registry
    scope = namespace.scope()
    assert scope == GlobalScope() and scope is GLOBAL_SCOPE and str(scope) == "global"
    assert scope.contains("a/b") and scope.contains("anything/at/all")
    assert namespace.repositories() == ["a", "a/b", "b"]
    assert namespace.repositories(last="a", n=1) == ["a/b"]
    repo: interfaces.Repository = namespace.repository("a/b")
    assert repo.named() == "a/b"
    enumerator: interfaces.RepositoryEnumerator = registry
    assert list(enumerator.enumerate()) == ["a", "a/b", "b"]
    image = make_image(5)
    everything = sorted(Digest(d) for d in [*image.blobs, image.digest])
    assert sorted(namespace.blobs().enumerate()) == everything
    assert namespace.blob_statter().stat(image.digest).size == len(image.manifest)
    remover: interfaces.RepositoryRemover = registry
    remover.remove("a")
    assert list(enumerator.enumerate()) == ["a/b", "b"]
    with pytest.raises(ErrRepositoryUnknown):
        remover.remove("a")


# Descriptor services


def test_linked_blob_statter(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "root")
    here = registry.repository("here")
    elsewhere = registry.repository("elsewhere").blobs().put("x", b"stored elsewhere")
    statter: interfaces.BlobDescriptorService = LinkedBlobStatter(here.blobs())
    with pytest.raises(ErrBlobUnknown):
        statter.stat(elsewhere.digest)
    # Setting the descriptor links the stored blob into the repository.
    statter.set_descriptor(elsewhere.digest, elsewhere)
    assert statter.stat(elsewhere.digest).size == elsewhere.size
    assert here.blobs().get(elsewhere.digest) == b"stored elsewhere"
    statter.clear(elsewhere.digest)
    with pytest.raises(ErrBlobUnknown):
        here.blobs().stat(elsewhere.digest)
    with pytest.raises(ErrBlobUnknown):
        statter.clear(elsewhere.digest)
    # What the layout cannot hold is refused, and nothing is linked.
    other = registry.repository("elsewhere").blobs().put("x", b"another")
    with pytest.raises(ErrUnsupported):
        statter.set_descriptor(elsewhere.digest, other)
    with pytest.raises(ErrBlobInvalidLength):
        statter.set_descriptor(elsewhere.digest, Descriptor("x", elsewhere.digest, 3))
    with pytest.raises(ErrBlobUnknown):
        statter.set_descriptor(
            digest_of(b"absent"), Descriptor("x", Digest(digest_of(b"absent")), 6)
        )
    assert list(here.blobs().enumerate()) == []
    # With deletes disabled, clearing (an unlink) is refused.
    statter.set_descriptor(elsewhere.digest, elsewhere)
    frozen = LinkedBlobStatter(
        Registry(tmp_path / "root", delete_enabled=False).repository("here").blobs()
    )
    with pytest.raises(ErrUnsupported):
        frozen.clear(elsewhere.digest)
    assert frozen.stat(elsewhere.digest).digest == elsewhere.digest


def test_memory_cache_keeps_the_most_recently_used() -> None:
    cache: interfaces.BlobDescriptorService = MemoryBlobDescriptorCache(2)
    a, b, c = (Descriptor("x", Digest(digest_of(s)), len(s)) for s in (b"a", b"bb", b"ccc"))
    cache.set_descriptor(a.digest, a)
    cache.set_descriptor(b.digest, b)
    assert cache.stat(a.digest) == a  # a is now the most recently used: b goes first
    cache.set_descriptor(c.digest, c)
    with pytest.raises(ErrBlobUnknown):
        cache.stat(b.digest)
    assert cache.stat(a.digest) == a and cache.stat(str(c.digest)) == c
    cache.clear(a.digest)
    cache.clear(a.digest)  # clearing what is not there is no error
    with pytest.raises(ErrBlobUnknown):
        cache.stat(a.digest)
    with pytest.raises(ErrDescriptorInvalid):
        cache.set_descriptor(a.digest, Descriptor("", a.digest, 1))
    with pytest.raises(ValueError):
        MemoryBlobDescriptorCache(0)


class CountingStatter:
    """A backend that counts the stats it answers."""

    def __init__(self, backend: interfaces.BlobDescriptorService) -> None:
        self.backend = backend
        self.stats = 0

    def stat(self, digest: Digest | str) -> Descriptor:
        self.stats += 1
        return self.backend.stat(digest)

    def set_descriptor(self, digest: Digest | str, descriptor: Descriptor) -> None:
        self.backend.set_descriptor(digest, descriptor)

    def clear(self, digest: Digest | str) -> None:
        self.backend.clear(digest)


def test_cached_descriptor_service_and_its_factory(registry: Registry) -> None:
    repo = registry.repository("app")
    desc = repo.blobs().put("x", b"cached")
    backend = CountingStatter(LinkedBlobStatter(repo.blobs()))
    factory: interfaces.BlobDescriptorServiceFactory = DescriptorCacheFactory(8)
    cached = factory.blob_access_controller(backend)
    assert isinstance(cached, CachedBlobDescriptorService)
    assert cached.stat(desc.digest).size == 6
    assert cached.stat(desc.digest).size == 6
    assert backend.stats == 1  # the second came from the cache
    # A miss in the backend is not cached: once linked, the blob is seen.
    other = registry.repository("other").blobs().put("x", b"linked later")
    with pytest.raises(ErrBlobUnknown):
        cached.stat(other.digest)
    cached.set_descriptor(other.digest, other)  # written through: linked in the repository
    assert repo.blobs().get(other.digest) == b"linked later"
    stats = backend.stats
    assert cached.stat(other.digest) == other and backend.stats == stats
    cached.clear(desc.digest)  # from the cache and the repository
    with pytest.raises(ErrBlobUnknown):
        cached.stat(desc.digest)
    with pytest.raises(ErrBlobUnknown):
        repo.blobs().stat(desc.digest)
    # Each wrapped service has its own cache: one repository's answers do not leak to another.
    elsewhere = factory.blob_access_controller(LinkedBlobStatter(registry.repository("b").blobs()))
    with pytest.raises(ErrBlobUnknown):
        elsewhere.stat(other.digest)


# Builders


def test_build_an_image_manifest_and_push_it(registry: Registry) -> None:
    repo = registry.repository("app")
    layers = [repo.blobs().put(LAYER, pattern(3000 + i, i)) for i in range(2)]
    subject = push(repo, make_image(6))
    config = b'{"architecture":"amd64","os":"linux"}'
    builder: interfaces.ManifestBuilder = (
        ManifestBuilder(repo.blobs())
        .set_config_data(CONFIG, config)
        .set_subject(repo.manifests().get(subject))
        .annotate("org.opencontainers.image.title", "app & <co>")
        .annotate("a.first", "sorted first")
        .set_artifact_type("application/vnd.example+type")
    )
    for layer in layers:
        builder.append_reference(Descriptor(LAYER, layer.digest, layer.size))
    assert [r.digest for r in builder.references()] == [layer.digest for layer in layers]
    manifest = builder.build()
    # The config was stored (and linked) by the build.
    assert repo.blobs().get(digest_of(config)) == config
    expected = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example+type",
        "config": {"mediaType": CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": LAYER, "digest": str(layer.digest), "size": layer.size}
            for layer in layers
        ],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": subject,
            "size": repo.blobs().registry.blobs().stat(subject).size,
        },
        "annotations": {"a.first": "sorted first", "org.opencontainers.image.title": "app & <co>"},
    }
    # Go's encoding/json: compact, fields in struct order, map keys sorted, HTML escaped.
    payload = manifest.payload()
    assert (
        payload
        == json.dumps(expected, separators=(",", ":"))
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .encode()
    )
    assert isinstance(manifest, ImageManifest)
    digest = repo.manifests().put(manifest, WithTag("built"))
    assert digest == manifest.digest
    assert repo.manifests().get(repo.tags().resolve("built")).payload() == payload
    assert [d.digest for d in repo.referrers(subject).manifests] == [digest]


def test_build_checks_the_blobs_it_references(registry: Registry) -> None:
    repo = registry.repository("app")
    other = registry.repository("other").blobs().put(LAYER, b"linked elsewhere only")
    config = repo.blobs().put(CONFIG, b"{}")
    short = repo.blobs().put(LAYER, b"twelve bytes")
    builder = ManifestBuilder(repo.blobs()).set_config(
        Descriptor(CONFIG, config.digest, config.size)
    )
    builder.append_reference(Descriptor(LAYER, other.digest, other.size))
    builder.append_reference(Descriptor(LAYER, short.digest, 99))
    foreign = Descriptor(LAYER, Digest(digest_of(b"far")), 3, urls=("https://example.com/l",))
    builder.append_reference(foreign)
    with pytest.raises(ErrManifestVerification) as failed:
        builder.build()
    kinds = [type(e) for e in failed.value.errors]
    assert kinds == [ErrManifestBlobUnknown, ErrBlobInvalidLength]  # the foreign layer passes
    assert failed.value.errors[0].detail == {"digest": str(other.digest)}


def test_build_an_artifact_with_the_empty_config(registry: Registry) -> None:
    repo = registry.repository("app")
    blob = repo.blobs().put("application/vnd.example.sbom", b"sbom")
    builder = ManifestBuilder(repo.blobs()).set_artifact_type("application/vnd.example.sbom")
    builder.append_reference(blob)
    manifest = builder.build()
    assert isinstance(manifest, ImageManifest) and manifest.config is not None
    assert manifest.config.media_type == EMPTY and repo.blobs().get(manifest.config.digest) == b"{}"
    repo.manifests().put(manifest)
    assert repo.manifests().get(manifest.digest).payload() == manifest.payload()


def test_docker_schema2_builds(registry: Registry) -> None:
    repo = registry.repository("app")
    with pytest.raises(ErrManifestInvalid):
        ManifestBuilder(repo.blobs(), media_type=DOCKER_MANIFEST).build()
    with pytest.raises(ErrManifestInvalid):
        ManifestBuilder(repo.blobs(), media_type=OCI_INDEX)
    config = "application/vnd.docker.container.image.v1+json"
    builder = ManifestBuilder(repo.blobs(), media_type=DOCKER_MANIFEST).set_config_data(
        config, b"{}"
    )
    assert builder.build().media_type == DOCKER_MANIFEST
    with pytest.raises(ErrManifestInvalid):
        builder.set_artifact_type("application/vnd.example").build()


def test_build_an_index_of_two_manifests(registry: Registry) -> None:
    repo = registry.repository("app")
    amd = push(repo, make_image(7, arch="amd64"))
    arm = push(repo, make_image(8, arch="arm64"))
    builder = IndexBuilder(repo.manifests()).annotate("org.example", "two")
    builder.append_reference(repo.manifests().get(amd), platform=Platform("amd64", "linux"))
    builder.append_reference(
        repo.manifests().get(arm), platform=Platform("arm64", "linux", variant="v8")
    )
    index = builder.build()
    assert isinstance(index, ImageIndex) and index.media_type == OCI_INDEX
    assert [(str(m.digest), m.platform) for m in index.manifests] == [
        (amd, Platform("amd64", "linux")),
        (arm, Platform("arm64", "linux", variant="v8")),
    ]
    assert json.loads(index.payload())["manifests"][1]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }
    digest = repo.manifests().put(index, WithTag("multi"))
    assert repo.manifests().get(digest, WithManifestMediaTypes([OCI_INDEX])).payload() == (
        index.payload()
    )
    # A manifest the repository does not have cannot be listed.
    missing = IndexBuilder(registry.repository("other").manifests())
    missing.append_reference(repo.manifests().get(amd))
    with pytest.raises(ErrManifestVerification) as failed:
        missing.build()
    assert [type(e) for e in failed.value.errors] == [ErrManifestBlobUnknown]
    docker = IndexBuilder(repo.manifests(), media_type=DOCKER_MANIFEST_LIST)
    with pytest.raises(ErrManifestInvalid):
        docker.set_subject(repo.manifests().get(amd)).build()


# The ASGI blob server


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes]


def serve(
    server: interfaces.BlobServer,
    digest: str,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
) -> Answer:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": f"/v2/app/blobs/{digest}",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(server.serve_blob(scope, receive, send, digest))
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    names = [k.decode() for k, _ in start["headers"]]
    assert len(names) == len(set(names)) and all(n == n.lower() for n in names)
    assert bodies and all(m["type"] == "http.response.body" for m in bodies)
    # Every message but the last says more is coming; the last ends the body.
    assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
    chunks = [m["body"] for m in bodies]
    return Answer(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(chunks),
        [c for c in chunks if c],
    )


def test_serve_blob_get_head_and_caching(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    data = pattern(5000)
    digest = str(store.put("x", data).digest)
    answer = serve(store, digest)
    assert answer.status == 200 and answer.body == data
    assert answer.headers == {
        "content-type": "application/octet-stream",
        "docker-content-digest": digest,
        "etag": f'"{digest}"',
        "accept-ranges": "bytes",
        "cache-control": "max-age=31536000",
        "content-length": "5000",
    }
    head = serve(store, digest, "HEAD")
    assert head.status == 200 and head.body == b"" and head.headers == answer.headers
    for tag in (f'"{digest}"', f'"other", W/"{digest}"', "*"):
        cached = serve(store, digest, headers=[("If-None-Match", tag)])
        assert cached.status == 304 and cached.body == b"", tag
        assert cached.headers["etag"] == f'"{digest}"' and "content-length" not in cached.headers
    assert serve(store, digest, headers=[("If-None-Match", '"sha256:other"')]).status == 200


@pytest.mark.parametrize(
    ("header", "status", "part", "content_range"),
    [
        ("bytes=10-19", 206, slice(10, 20), "bytes 10-19/5000"),
        ("bytes=4990-", 206, slice(4990, 5000), "bytes 4990-4999/5000"),
        ("bytes=-7", 206, slice(4993, 5000), "bytes 4993-4999/5000"),
        ("bytes=4000-99999", 206, slice(4000, 5000), "bytes 4000-4999/5000"),
        ("bytes=0-0", 206, slice(0, 1), "bytes 0-0/5000"),
        ("bytes=0-1,5-6", 200, slice(0, 5000), None),  # several ranges: the whole blob
        ("items=0-1", 200, slice(0, 5000), None),
    ],
)
def test_serve_blob_ranges(
    tmp_path: Path, header: str, status: int, part: slice, content_range: str | None
) -> None:
    store = BlobStore(tmp_path / "root")
    data = pattern(5000, 1)
    digest = str(store.put("x", data).digest)
    answer = serve(store, digest, headers=[("Range", header)])
    assert answer.status == status and answer.body == data[part]
    assert answer.headers["content-length"] == str(len(data[part]))
    assert answer.headers.get("content-range") == content_range
    head = serve(store, digest, "HEAD", headers=[("Range", header)])
    assert head.status == status and head.body == b""
    assert head.headers["content-length"] == str(len(data[part]))


def test_serve_blob_if_range(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    data = pattern(100, 2)
    digest = str(store.put("x", data).digest)
    same = serve(store, digest, headers=[("Range", "bytes=5-9"), ("If-Range", f'"{digest}"')])
    assert same.status == 206 and same.body == data[5:10]
    changed = serve(store, digest, headers=[("Range", "bytes=5-9"), ("If-Range", '"stale"')])
    assert changed.status == 200 and changed.body == data


def test_serve_blob_errors(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    digest = str(store.put("x", b"0123456789").digest)
    unsatisfiable = serve(store, digest, headers=[("Range", "bytes=10-")])
    assert unsatisfiable.status == 416
    assert unsatisfiable.headers["content-range"] == "bytes */10"
    assert json.loads(unsatisfiable.body)["errors"][0]["code"] == "SIZE_INVALID"
    missing = digest_of(b"not stored")
    unknown = serve(store, missing)
    assert unknown.status == 404 and unknown.headers["content-type"] == "application/json"
    assert unknown.headers["content-length"] == str(len(unknown.body))
    error = json.loads(unknown.body)["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN" and missing in error["message"]
    head = serve(store, missing, "HEAD")
    assert head.status == 404 and head.body == b""
    invalid = serve(store, "sha256:NOT-HEX")
    assert invalid.status == 400
    assert json.loads(invalid.body)["errors"][0]["code"] == "DIGEST_INVALID"
    refused = serve(store, digest, "DELETE")
    assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"
    assert json.loads(refused.body)["errors"][0]["code"] == "UNSUPPORTED"


def test_serve_blob_streams_in_blocks(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    data = pattern(2 * BLOCK + 12345, 3)
    digest = str(store.put("x", data).digest)
    whole = serve(store, digest)
    assert whole.body == data
    assert [len(c) for c in whole.chunks] == [BLOCK, BLOCK, 12345]
    # A range across a block boundary, read from its start in blocks.
    start, end = BLOCK - 5, 2 * BLOCK + 9
    part = serve(store, digest, headers=[("Range", f"bytes={start}-{end}")])
    assert part.status == 206 and part.body == data[start : end + 1]
    assert [len(c) for c in part.chunks] == [BLOCK, end + 1 - start - BLOCK]


def test_serve_blob_of_a_repository_only_serves_its_linked_blobs(
    storage: FilesystemDriver | ObjectStoreDriver,
) -> None:
    registry = Registry(storage)
    data = pattern(BLOCK + 1, 4)
    digest = str(registry.repository("a").blobs().put("x", data).digest)
    answer = serve(registry.repository("a").blobs(), digest, headers=[("Range", "bytes=1-")])
    assert answer.status == 206 and answer.body == data[1:]
    assert serve(registry.repository("b").blobs(), digest).status == 404
    assert serve(registry.blobs(), digest).body == data


class TrackingReader:
    def __init__(self, reader: interfaces.ReadSeekCloser) -> None:
        self.reader = reader
        self.closed = False
        self.reads = 0

    def read_at(self, offset: int, size: int) -> bytes:
        self.reads += 1
        return self.reader.read_at(offset, size)

    def close(self) -> None:
        self.closed = True
        self.reader.close()


def test_serve_blob_closes_the_reader_when_the_client_leaves(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "root")
    data = pattern(4 * BLOCK, 5)
    digest = store.put("x", data).digest
    readers: list[TrackingReader] = []

    class Blobs:
        def stat(self, d: Digest | str) -> Descriptor:
            return store.stat(d)

        def open(self, d: Digest | str) -> Any:
            readers.append(TrackingReader(store.open(d)))
            return readers[-1]

    sent = 0

    async def send(message: Any) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += 1
            if sent == 2:
                raise OSError("client went away")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(OSError, match="client went away"):
        asyncio.run(serve_blob(Blobs(), scope, receive, send, digest))
    (reader,) = readers
    # Closed, and not read to the end: at most the block in flight when the send failed.
    assert reader.closed and reader.reads <= 3
